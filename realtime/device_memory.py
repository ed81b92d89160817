"""The memory the device callback shares with the worker: two rings and the callback's counters.

Why a file of its own: with ``EngineConfig.callback_process`` the PortAudio callback runs in a process
of its own (realtime/device_process.py) and this segment is all the two processes share; without it
the same layout is simply not used (plain arrays in one process).

Layout (one anonymous file, mapped by both; sizes in bytes):

    0                 counts        N_COUNTS int64  (callback.py: blocks, dropouts, xruns, ...)
    8 * N_COUNTS      in_idx        2 int64         input ring: written, read
    + 16              out_idx       2 int64         output ring: written, read
    64-aligned        in_buf        capacity x in_channels float32
    64-aligned        out_buf       capacity x out_channels float32

The file is unlinked as soon as it is made and travels to the device process as an open descriptor
(``pass_fds``), so nothing is left in /dev/shm whatever happens to either process.

Thread: made by the controlling thread before the stream starts; then read and written through the
rings' own single-writer rules (realtime/ringbuffer.py).
"""

from __future__ import annotations

import mmap
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from diffusion.errors import StylehostError
from realtime.ringbuffer import RingBuffer
from realtime.state import N_COUNTS


def _align(n: int, to: int = 64) -> int:
    return -(-n // to) * to


@dataclass(frozen=True)
class MemoryLayout:
    """Where each part lives in the segment; both processes compute it from the same three numbers."""

    capacity: int
    in_channels: int
    out_channels: int

    @property
    def index_bytes(self) -> int:
        return 8 * (N_COUNTS + 4)

    @property
    def in_offset(self) -> int:
        return _align(self.index_bytes)

    @property
    def out_offset(self) -> int:
        return _align(self.in_offset + 4 * self.capacity * self.in_channels)

    @property
    def size(self) -> int:
        return _align(self.out_offset + 4 * self.capacity * self.out_channels)


class CallbackMemory:
    """The shared segment, mapped; ``fd`` is what the device process is handed."""

    def __init__(self, fd: int, layout: MemoryLayout) -> None:
        if os.fstat(fd).st_size < layout.size:
            raise StylehostError(f"shared callback memory holds {os.fstat(fd).st_size} bytes, needs {layout.size}")
        self.fd = fd
        self.layout = layout
        self._map = mmap.mmap(fd, layout.size)
        index = np.frombuffer(self._map, np.int64, N_COUNTS + 4, 0)
        self.counts = index[:N_COUNTS]
        self._in_idx = index[N_COUNTS : N_COUNTS + 2]
        self._out_idx = index[N_COUNTS + 2 :]
        lay = layout
        self._in_buf = np.frombuffer(self._map, np.float32, lay.capacity * lay.in_channels, lay.in_offset)
        self._out_buf = np.frombuffer(self._map, np.float32, lay.capacity * lay.out_channels, lay.out_offset)

    @classmethod
    def create(cls, capacity: int, in_channels: int, out_channels: int) -> CallbackMemory:
        """A new zeroed segment in /dev/shm (RAM) when there is one, unlinked at once."""
        layout = MemoryLayout(capacity, in_channels, out_channels)
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, path = tempfile.mkstemp(prefix="stylehost-callback-", dir=folder)
        os.unlink(path)
        os.ftruncate(fd, layout.size)
        return cls(fd, layout)

    def __del__(self) -> None:
        try:
            os.close(self.fd)  # the mapping stays valid as long as a view of it does
        except OSError:
            pass

    def rings(self) -> tuple[RingBuffer, RingBuffer]:
        """(input ring, output ring) over the shared storage; the same in both processes."""
        lay = self.layout
        return (RingBuffer(lay.capacity, lay.in_channels, storage=self._in_buf.reshape(lay.capacity, lay.in_channels),
                           counters=self._in_idx),
                RingBuffer(lay.capacity, lay.out_channels,
                           storage=self._out_buf.reshape(lay.capacity, lay.out_channels), counters=self._out_idx))
