"""The engine's shared state, named in one place, with the thread that writes each part.

realtime/engine.py builds it (``Engine.__init__``); the thread-role modules read and write it as mixins
of ``Engine``: callback.py (the PortAudio callback thread), worker.py (the worker thread), faults.py and
mix.py (called by the worker), latency.py (start-up arithmetic, no state). Threads share nothing but
what is listed here, and every field has one writer thread; the other side reads it with staleness
tolerated (a counter one block late) or through a single-producer single-consumer ring buffer.

Thread: none of its own; this module only declares.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from realtime.calltrace import CallTrace
from realtime.governor import LoadGovernor
from realtime.level import LevelMatcher
from realtime.params import EngineParams, Latency
from realtime.processor import Processor
from realtime.resample import StreamResampler
from realtime.ringbuffer import RingBuffer
from realtime.tap import SignalTap

if TYPE_CHECKING:
    from realtime.engine import EngineConfig
    from realtime.mix import Ramp

# The callback's counters, one int64 slot each in ``_cb_counts`` (shared memory when the callback runs in
# a process of its own, realtime/device_process.py): written only by the callback, read by anyone.
# CALL_MAX_NS: the longest callback so far, in ns (it proves the callback never waits on the worker).
BLOCKS, DROPOUTS, XRUNS, IN_OVERRUNS, STREAM_STATE, CALL_MAX_NS = range(6)
N_COUNTS = 8  # room to grow without changing the shared layout's alignment
STREAM_OPENING, STREAM_RUNNING, STREAM_DEAD = 0, 1, 2  # STREAM_STATE: written by the device process


class EngineState:
    """Declarations only (values are set in ``Engine.__init__``)."""

    # ---- fixed at construction (read by every thread) ---------------------------------------------
    config: EngineConfig
    processors: list[Processor]
    model_rate: int
    latency: Latency  # replaced once by set_device_latency, before the stream starts
    _prime: int  # output-ring zeros: block + buffering + margin
    _dry_delay: int  # dry-line zeros: processor + resampler delay

    # ---- the hand-over between the threads: lock-free SPSC rings ------------------------------------
    _in_ring: RingBuffer  # callback writes, worker reads
    _out_ring: RingBuffer  # worker writes, callback reads (and discards what it owes)
    _wake_r: int  # self-pipe: the callback writes a byte per block, the worker waits on it
    _wake_w: int

    # ---- callback thread (callback.py) --------------------------------------------------------------
    _cb_counts: np.ndarray  # int64: blocks, dropouts, xruns, input overruns, stream state (callback.py)
    _debt: int  # output samples owed after a dropout (discarded when they arrive late)
    _last: np.ndarray  # last good output sample per channel (the dropout fade starts from it)
    _fade_len: int
    _max_block: int
    _fade_out: np.ndarray
    _fade_in: np.ndarray
    _fade_in_pos: int  # == _fade_len: not fading in

    # ---- worker thread (worker.py, faults.py, mix.py) -----------------------------------------------
    _params: EngineParams  # written by set_params (any thread, under _params_lock), read by the worker
    _params_lock: threading.Lock
    _applied: EngineParams | None
    _model_ring: RingBuffer
    _dry_ring: RingBuffer
    _to_model: StreamResampler
    _to_device: StreamResampler
    _in_block: np.ndarray
    _windows: np.ndarray
    _stride_in: np.ndarray
    _stride_out: np.ndarray
    _dry: np.ndarray
    _out_map: np.ndarray
    _dry_map: np.ndarray
    _gain: Ramp
    _wet: Ramp
    _dry_gain: Ramp
    _fallback: Ramp  # 1 = wet as set, 0 = dry only (after a model fault, or the governor's dry)
    level: LevelMatcher
    _level_matched: bool
    skipped: int
    _out_overruns: int  # mixed samples the full output ring refused
    bad_input: int
    bad_output: int
    processor_errors: int
    worker_errors: int
    limited: int
    last_error: str
    _recover_calls: int
    _unhealthy: int
    _compute_times: np.ndarray
    compute_count: int
    dry_strides: int  # strides the load governor played dry (no processor call): a benchmark's model share
    _load: float
    governor: LoadGovernor
    _governing: bool
    _in_peak: float  # reset by status() (a reader; a lost peak costs one meter frame)
    _out_peak: float
    input_tap: SignalTap
    output_tap: SignalTap
    trace: CallTrace | None  # per-call records (realtime/calltrace.py); set only while stopped, None = off

    # ---- the controlling thread (start/stop) --------------------------------------------------------
    _thread: threading.Thread | None
    _stop: threading.Event
    realtime_priority: bool  # written by the worker as it starts
    pinned_cpus: list[int]  # written by the worker as it starts (pin_cpus)

    @property
    def dropouts(self) -> int:
        """Callbacks that found too little processed audio (filled with a fade instead)."""
        return int(self._cb_counts[DROPOUTS])

    @property
    def xruns(self) -> int:
        """Callbacks whose status flags reported an over/underrun of the device."""
        return int(self._cb_counts[XRUNS])

    @property
    def blocks(self) -> int:
        """Callbacks so far (the stall check watches it grow)."""
        return int(self._cb_counts[BLOCKS])

    @property
    def callback_max_ms(self) -> float:
        """The longest callback so far, in ms: a few tenths when it only copies; a callback that waited
        on the worker (or was starved by the machine) shows up here whatever the device reports."""
        return int(self._cb_counts[CALL_MAX_NS]) / 1e6

    @property
    def _in_overruns(self) -> int:
        return int(self._cb_counts[IN_OVERRUNS])

    @property
    def _matching_level(self) -> bool:
        """The level match is on (params) and this processor changes level (DSP stand-ins do not)."""
        return self._params.match_level and self._level_matched
