"""The device side of the engine: what runs on the audio callback thread.

Thread: the PortAudio callback (or ``render``'s loop, offline). Why a file of its own: this is the code
that must never block, allocate sample buffers, take a lock or log; it only copies between the
preallocated rings (realtime/ringbuffer.py) and multiplies in place. Everything else is the worker's
(realtime/worker.py), woken through a non-blocking self-pipe.

When the worker is late the callback fills the gap with the last good sample faded to zero, counts a
dropout and remembers how many samples it owes; late samples are dropped when they arrive, so the
latency stays exactly L after recovery (realtime/latency.py).
"""

from __future__ import annotations

import os
import time

import numpy as np

from realtime.ringbuffer import RingBuffer
from realtime.state import BLOCKS, CALL_MAX_NS, DROPOUTS, IN_OVERRUNS, N_COUNTS, XRUNS, EngineState


class CallbackSide(EngineState):
    """``process_block`` and its dropout fill; the fields it writes are the callback group of EngineState."""

    def _init_callback(self, sample_rate: int, blocksize: int, out_channels: int, fade_ms: float,
                       in_ring: RingBuffer, out_ring: RingBuffer, counts: np.ndarray | None = None) -> None:
        """Preallocate the callback's state, so that it only copies and multiplies in place."""
        self._in_ring = in_ring
        self._out_ring = out_ring
        self._cb_counts = counts if counts is not None else np.zeros(N_COUNTS, np.int64)
        self._fade_len = max(1, int(fade_ms * sample_rate / 1000))
        self._max_block = max(8192, 4 * blocksize)
        fade = np.clip(1.0 - np.arange(self._max_block) / self._fade_len, 0.0, 1.0).astype(np.float32)
        self._fade_out = fade
        self._fade_in = np.ascontiguousarray(1.0 - fade[: self._fade_len])[:, None]
        self._fade_in_pos = self._fade_len  # == fade_len: not fading in
        self._last = np.zeros(out_channels, np.float32)
        self._debt = 0

    def process_block(self, indata: np.ndarray, outdata: np.ndarray, status_flags: object = None) -> None:
        """Move one block: indata (frames, in_channels) in, outdata (frames, out_channels) out.

        Real-time safe: copies through preallocated rings, multiplies in place, no allocation of
        sample buffers, no locks, no logging. Keep it that way; the worker does everything else.
        """
        t0 = time.perf_counter_ns()  # a clock read, no syscall beyond the vDSO
        counts = self._cb_counts
        if status_flags:
            counts[XRUNS] += 1
        frames = len(indata)
        written = self._in_ring.write(indata)
        if written < frames:
            counts[IN_OVERRUNS] += frames - written
        if self._debt:
            self._debt -= self._out_ring.discard(self._debt)
        got = self._out_ring.read(outdata)  # audit: callback-never-waits
        if got < frames:
            self._underrun(outdata, got, frames)
        elif self._fade_in_pos < self._fade_len:
            n = min(frames, self._fade_len - self._fade_in_pos)
            fade = self._fade_in[self._fade_in_pos : self._fade_in_pos + n]
            np.multiply(outdata[:n], fade, out=outdata[:n])
            self._fade_in_pos += n
        if frames:
            self._last[:] = outdata[frames - 1]
        counts[BLOCKS] += 1
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"\0")  # self-pipe: a syscall, no Python lock
            except BlockingIOError:
                pass  # the worker has plenty of wake-ups queued already
        took = time.perf_counter_ns() - t0
        if took > counts[CALL_MAX_NS]:
            counts[CALL_MAX_NS] = took

    def _underrun(self, outdata: np.ndarray, got: int, frames: int) -> None:
        """Fill outdata[got:] with the last good sample fading to zero; owe the missing samples."""
        self._cb_counts[DROPOUTS] += 1
        missing = frames - got
        self._debt += missing
        m = min(missing, self._max_block)
        last = self._last if got == 0 else outdata[got - 1]
        for c in range(outdata.shape[1]):
            np.multiply(self._fade_out[:m], last[c], out=outdata[got : got + m, c])
        if missing > m:
            outdata[got + m :] = 0.0
        self._fade_in_pos = 0
