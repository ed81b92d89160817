"""A preallocated single-producer single-consumer float32 ring buffer for the audio callback.

Why not a queue: the PortAudio callback must not allocate, lock or block. This ring allocates its
storage once; ``write``/``read`` copy through at most two contiguous index ranges (the part before
the wrap and the part after it) with ``np.copyto`` on basic slices, which are views, never copies.

Thread safety: one producer calls ``write``, one consumer calls ``read``/``discard``, in one process
or in two (realtime/device_process.py puts the storage and the counters in shared memory). The
producer only advances the written counter and the consumer only the read counter; each is one
aligned int64 slot, stored whole (atomic on x86-64 and arm64), and each side reads the other's
counter once per call, so the worst case is slightly stale availability, never torn data. The data
is copied before the counter that publishes it is stored (x86-64 keeps stores in order; on weaker
memory models the interpreter's own calls between the two stores are what keeps them apart). The
counters do not wrap in practice (2**63 samples) so ``written - read`` is always the fill level.

Worked example (capacity 8): after 6 writes and 5 reads, ``_read = 5`` and ``_written = 6``; writing
5 more samples fills slots 6, 7 (first range) and 0, 1, 2 (second range), ``_written = 11``.
"""

from __future__ import annotations

import numpy as np

from diffusion.errors import StylehostError


class RingBuffer:
    """SPSC ring of ``capacity`` frames x ``channels`` float32 samples; never allocates after init."""

    def __init__(self, capacity: int, channels: int = 1, debug: bool = False,
                 storage: np.ndarray | None = None, counters: np.ndarray | None = None) -> None:
        """``storage`` (capacity, channels) float32 and ``counters`` (2,) int64: memory to use instead of
        new arrays, e.g. views of a shared segment both processes map (realtime/device_process.py)."""
        if capacity < 1 or channels < 1:
            raise StylehostError(f"ring buffer needs capacity >= 1 and channels >= 1, got {capacity}, {channels}")
        self.capacity = int(capacity)
        self.channels = int(channels)
        if storage is None:
            storage = np.zeros((self.capacity, self.channels), dtype=np.float32)
        if counters is None:
            counters = np.zeros(2, dtype=np.int64)
        if storage.shape != (self.capacity, self.channels) or storage.dtype != np.float32:
            raise StylehostError(f"ring storage must be float32 {(self.capacity, self.channels)}, got "
                                 f"{storage.dtype} {storage.shape}")
        if counters.shape != (2,) or counters.dtype != np.int64:
            raise StylehostError(f"ring counters must be int64 (2,), got {counters.dtype} {counters.shape}")
        self._buf = storage
        self._idx = counters  # [0]: frames ever written (producer-owned), [1]: ever read or discarded
        self._debug = debug  # checks shapes on every call; off in the callback path

    @property
    def _written(self) -> int:
        return int(self._idx[0])

    @property
    def _read(self) -> int:
        return int(self._idx[1])

    @property
    def counters(self) -> np.ndarray:
        """The (written, read) int64 pair, for a test or a status reader; never write to it."""
        return self._idx

    @property
    def read_available(self) -> int:
        """Frames the consumer can read now."""
        return self._written - self._read

    @property
    def write_available(self) -> int:
        """Frames the producer can write now without overwriting unread data."""
        return self.capacity - (self._written - self._read)

    def write(self, data: np.ndarray) -> int:
        """Copy as many leading frames of ``data`` (frames, channels) as fit; return how many.

        Frames that do not fit are dropped (overrun); the caller counts them.
        """
        if self._debug:
            self._check(data)
        written, read = int(self._idx[0]), int(self._idx[1])  # each counter read once per call
        n = min(len(data), self.capacity - (written - read))
        if n <= 0:
            return 0
        start = written % self.capacity
        first = min(n, self.capacity - start)
        np.copyto(self._buf[start : start + first], data[:first])
        if n > first:
            np.copyto(self._buf[: n - first], data[first:n])
        self._idx[0] = written + n  # publish only after the data is in place
        return n

    def write_zeros(self, n: int) -> int:
        """Write ``n`` frames of silence (priming, or placeholders for skipped input); return count."""
        written, read = int(self._idx[0]), int(self._idx[1])
        n = min(n, self.capacity - (written - read))
        if n <= 0:
            return 0
        start = written % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = 0.0
        if n > first:
            self._buf[: n - first] = 0.0
        self._idx[0] = written + n
        return n

    def read(self, out: np.ndarray) -> int:
        """Fill the leading frames of ``out`` (frames, channels); return how many were available."""
        if self._debug:
            self._check(out)
        written, read = int(self._idx[0]), int(self._idx[1])
        n = min(len(out), written - read)
        if n <= 0:
            return 0
        start = read % self.capacity
        first = min(n, self.capacity - start)
        np.copyto(out[:first], self._buf[start : start + first])
        if n > first:
            np.copyto(out[first:n], self._buf[: n - first])
        self._idx[1] = read + n  # release the slots only after copying out
        return n

    def discard(self, n: int) -> int:
        """Drop up to ``n`` unread frames without copying (consumer side); return how many."""
        read = self._read
        n = max(0, min(n, self._written - read))
        self._idx[1] = read + n
        return n

    def clear(self) -> None:
        """Forget everything; only safe while neither side is running."""
        self._idx[1] = self._idx[0]

    def _check(self, data: np.ndarray) -> None:
        if data.ndim != 2 or data.shape[1] != self.channels or data.dtype != np.float32:
            raise StylehostError(
                f"ring buffer expects float32 (frames, {self.channels}), got {data.dtype} {data.shape}"
            )
