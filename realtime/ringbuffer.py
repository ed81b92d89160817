"""A preallocated single-producer single-consumer float32 ring buffer for the audio callback.

Why not a queue: the PortAudio callback must not allocate, lock or block. This ring allocates its
storage once; ``write``/``read`` copy through at most two contiguous index ranges (the part before
the wrap and the part after it) with ``np.copyto`` on basic slices, which are views, never copies.

Thread safety: one producer thread calls ``write``, one consumer thread calls ``read``/``discard``.
The producer only advances ``_written`` and the consumer only advances ``_read``; both are Python
ints assigned atomically under the GIL, and each side reads the other's counter once per call, so
the worst case is seeing slightly stale availability, never torn data. The counters grow without
wrapping (Python ints) so ``_written - _read`` is always the fill level.

Worked example (capacity 8): after 6 writes and 5 reads, ``_read = 5`` and ``_written = 6``; writing
5 more samples fills slots 6, 7 (first range) and 0, 1, 2 (second range), ``_written = 11``.
"""

from __future__ import annotations

import numpy as np

from diffusion.errors import StylehostError


class RingBuffer:
    """SPSC ring of ``capacity`` frames x ``channels`` float32 samples; never allocates after init."""

    def __init__(self, capacity: int, channels: int = 1, debug: bool = False) -> None:
        if capacity < 1 or channels < 1:
            raise StylehostError(f"ring buffer needs capacity >= 1 and channels >= 1, got {capacity}, {channels}")
        self.capacity = int(capacity)
        self.channels = int(channels)
        self._buf = np.zeros((self.capacity, self.channels), dtype=np.float32)
        self._written = 0  # total frames ever written (producer-owned)
        self._read = 0  # total frames ever read or discarded (consumer-owned)
        self._debug = debug  # checks shapes on every call; off in the callback path

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
        n = min(len(data), self.capacity - (self._written - self._read))
        if n <= 0:
            return 0
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        np.copyto(self._buf[start : start + first], data[:first])
        if n > first:
            np.copyto(self._buf[: n - first], data[first:n])
        self._written += n  # publish only after the data is in place
        return n

    def write_zeros(self, n: int) -> int:
        """Write ``n`` frames of silence (priming, or placeholders for skipped input); return count."""
        n = min(n, self.capacity - (self._written - self._read))
        if n <= 0:
            return 0
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = 0.0
        if n > first:
            self._buf[: n - first] = 0.0
        self._written += n
        return n

    def read(self, out: np.ndarray) -> int:
        """Fill the leading frames of ``out`` (frames, channels); return how many were available."""
        if self._debug:
            self._check(out)
        n = min(len(out), self._written - self._read)
        if n <= 0:
            return 0
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        np.copyto(out[:first], self._buf[start : start + first])
        if n > first:
            np.copyto(out[first:n], self._buf[: n - first])
        self._read += n  # release the slots only after copying out
        return n

    def discard(self, n: int) -> int:
        """Drop up to ``n`` unread frames without copying (consumer side); return how many."""
        n = max(0, min(n, self._written - self._read))
        self._read += n
        return n

    def clear(self) -> None:
        """Forget everything; only safe while neither side is running."""
        self._read = self._written

    def _check(self, data: np.ndarray) -> None:
        if data.ndim != 2 or data.shape[1] != self.channels or data.dtype != np.float32:
            raise StylehostError(
                f"ring buffer expects float32 (frames, {self.channels}), got {data.dtype} {data.shape}"
            )
