"""A lock-free tap of the most recent mono samples, written by the worker and read by a panel.

Why not the engine's RingBuffer: that one is lossless and the producer stops when it is full, so a
stalled reader (a busy GUI) would make the writer drop data or wait. A tap must never push back on
audio: the writer always overwrites the oldest samples, and a reader that fell behind simply skips
to the newest ``capacity`` samples and is told how many it missed.

Thread safety (one writer, any one reader): the writer copies into at most two basic-slice ranges,
then publishes by storing the int64 write counter (one aligned store: atomic for a reader in this
process or, with ``storage`` in shared memory, in another one; realtime/remote.py). The reader owns its cursor. A read
can race the writer overwriting the oldest slots it is copying; the reader checks ``_written``
again after the copy and drops any samples the writer may have overwritten meanwhile, so what it
returns is never torn. Nothing here locks, allocates sample buffers per call, or waits.

Worked example (capacity 8, reader cursor 3): the writer has written 13 samples, so slots hold
samples 5..12; 10 are unread but only 8 exist, so ``read_new`` skips 2 (samples 3, 4) and returns
samples 5..12 (or only the newest ``len(out)`` of them when ``out`` is shorter, skipping the rest).
"""

from __future__ import annotations

import numpy as np

from diffusion.errors import StylehostError


class SignalTap:
    """Overwriting ring of the last ``capacity`` mono samples; the writer never waits for a reader."""

    def __init__(self, capacity: int, max_block: int = 16384, storage: memoryview | None = None) -> None:
        """``storage``: put the samples and the write counter in this buffer (``storage_bytes(capacity)``
        long, e.g. shared memory), so a writer and a reader in different processes share one tap."""
        if capacity < 1 or max_block < 1:
            raise StylehostError(f"signal tap needs capacity >= 1 and max_block >= 1, got {capacity}, {max_block}")
        self.capacity = int(capacity)
        if storage is None:
            storage = memoryview(bytearray(self.storage_bytes(self.capacity)))
        if len(storage) < self.storage_bytes(self.capacity):
            raise StylehostError(f"signal tap storage of {len(storage)} bytes is too small for {capacity} samples")
        # Total samples ever written (writer-owned): one aligned int64 in front of the samples, so
        # publishing it is a single store that a reader (in another thread or process) sees whole.
        self._count = np.ndarray((1,), np.int64, buffer=storage, offset=0)
        self._buf = np.ndarray((self.capacity,), np.float32, buffer=storage, offset=8)
        self._mono = np.zeros(int(max_block), np.float32)  # down-mix scratch, so write() never allocates
        self._cursor = 0  # total samples consumed by read_new (reader-owned)
        self.missed = 0  # samples the reader skipped because it fell behind (reader-owned)

    @staticmethod
    def storage_bytes(capacity: int) -> int:
        return 8 + 4 * int(capacity)

    def release(self) -> None:
        """Drop the views of external storage (shared memory cannot close while they exist)."""
        self._count = np.zeros(1, np.int64)
        self._buf = np.zeros(self.capacity, np.float32)

    @property
    def _written(self) -> int:
        return int(self._count[0])

    @property
    def written(self) -> int:
        """Total samples ever written; a reader can compare two values to see that audio flows."""
        return self._written

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` ((frames,) or (frames, channels), mixed to mono); oldest samples go."""
        if block.ndim == 2:
            n = min(len(block), len(self._mono))
            mono = self._mono[:n]
            np.copyto(mono, block[:n, 0])
            if block.shape[1] > 1:  # channel by channel: np.mean(axis=1, out=) still allocates temporaries
                for c in range(1, block.shape[1]):
                    np.add(mono, block[:n, c], out=mono)
                np.multiply(mono, 1.0 / block.shape[1], out=mono)
        else:
            mono = block
        n = len(mono)
        written = self._written
        if n > self.capacity:  # only the newest capacity samples can be kept
            written += n - self.capacity
            mono = mono[n - self.capacity :]
            n = self.capacity
        start = written % self.capacity
        first = min(n, self.capacity - start)
        np.copyto(self._buf[start : start + first], mono[:first])
        if n > first:
            np.copyto(self._buf[: n - first], mono[first:])
        self._count[0] = written + n  # publish after the data is in place

    def read_new(self, out: np.ndarray) -> int:
        """Copy samples written since the last call into ``out[:k]``, oldest first; return k.

        When more than ``len(out)`` (or ``capacity``) new samples exist, the oldest are skipped and
        counted in ``missed``: a panel wants the present, not a backlog.
        """
        end = self._written
        start = max(self._cursor, end - self.capacity, end - len(out))
        n = end - start
        if n > 0:
            self._copy(start, out[:n])
            # Samples the writer overwrote while we copied are torn: drop them from the front.
            torn = max(0, self._written - self.capacity - start)
            if torn:
                n = max(0, n - torn)
                out[:n] = out[torn : torn + n]
                start = end - n
        self.missed += start - self._cursor
        self._cursor = end
        return max(n, 0)

    def latest(self, out: np.ndarray) -> int:
        """Copy the newest ``len(out)`` samples (fewer at start-up) without moving the cursor."""
        end = self._written
        n = min(len(out), self.capacity, end)
        if n:
            self._copy(end - n, out[:n])
        return n

    def _copy(self, start: int, out: np.ndarray) -> None:
        n = len(out)
        pos = start % self.capacity
        first = min(n, self.capacity - pos)
        np.copyto(out[:first], self._buf[pos : pos + first])
        if n > first:
            np.copyto(out[first:], self._buf[: n - first])
