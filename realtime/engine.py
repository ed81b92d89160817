"""The streaming engine: a copy-only device callback, a worker that runs the processor, fixed latency.

Data path (device rate R, model rate r = processor.sample_rate, block B, stride s):

    callback:  indata -> input ring            output ring -> outdata   (copies only)
    worker:    input ring -(B)-> gain -> [dry delay line] -> mid / per-channel -> resample R->r
               -> model-rate ring -(s)-> processor window -> processor -> resample r->R
               -> level match (wet follows the dry line's loudness) -> wet/dry mix with the dry
               delay line -> output ring
    taps:      the worker also copies the gained input and the mixed output into ``input_tap`` and
               ``output_tap`` (overwriting, lock-free) for a panel's spectrogram

``process_block`` is the device-side half (called by the PortAudio callback, or by ``render`` with
blocks read from a file), ``pump`` the worker half (called by the worker thread, or right after each
block offline). Live and offline therefore run the same code.

Layout, one file per thread role (docs/live.md, "Layout"); this file only wires them:

    state.py     the state the threads share, each field with its one writer thread
    callback.py  the audio callback thread: ``process_block``, copies between preallocated rings
    worker.py    the worker thread: ``pump``, parameters, processors, the load governor, start/stop
    faults.py    the worker's guards: bad input, failing or non-finite models, the fallback to dry
    mix.py       the worker's wet/dry mix, level match and output soft clip
    latency.py   start-up arithmetic: the fixed latency L and its worked example

Bad input and failing models (docs/reliability.md) are all handled in the worker so the callback stays
copy-only (faults.py, mix.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from diffusion.errors import StylehostError
from realtime.callback import CallbackSide
from realtime.calltrace import CAPACITY as CALLTRACE_CAPACITY
from realtime.calltrace import CallTrace
from realtime.device_memory import CallbackMemory
from realtime.faults import INPUT_CEILING, PROCESSOR_CEILING
from realtime.governor import LoadGovernor
from realtime.latency import measure_latency, with_device_latency
from realtime.level import LevelMatcher
from realtime.mix import LIMIT_KNEE, Ramp, soft_clip
from realtime.params import EngineParams, EngineStatus
from realtime.processor import Processor
from realtime.resample import QUALITY, StreamResampler
from realtime.ringbuffer import RingBuffer
from realtime.tap import SignalTap
from realtime.worker import WorkerSide

# Importable from here as before the split (tests, realtime/render.py, the benchmarks).
__all__ = ["INPUT_CEILING", "LIMIT_KNEE", "PROCESSOR_CEILING", "STEREO_MODES", "Engine", "EngineConfig",
           "soft_clip"]

STEREO_MODES = ("mid", "per-channel")


@dataclass(frozen=True)
class EngineConfig:
    """Device-side settings, fixed for the engine's life."""

    sample_rate: int = 48000  # device (or file) rate
    blocksize: int = 256  # callback block; the latency is computed for this size
    in_channels: int = 1
    out_channels: int = 1
    stereo_mode: str = "mid"  # "mid": one processor on the channel mean; "per-channel": one each
    margin_ms: float = 6.0  # compute margin on top of one block (shipped model: 4 ms dropped out, 6 ms did not)
    fade_ms: float = 5.0  # dropout fade-out / recovery fade-in
    smoothing_ms: float = 20.0  # wet/dry, bypass and gain ramps
    ring_seconds: float = 2.0
    tap_seconds: float = 1.0  # recent input/output kept for a panel (input_tap, output_tap)
    resample_quality: str = QUALITY
    # Live only: run the device callback in a process of its own that holds nothing but the shared rings
    # (realtime/device_process.py), so it never waits on this process's GIL or collector.
    callback_process: bool = False
    # Live only: the worker on the last CPU (realtime/worker.py split_cpus); with callback_process the device
    # process (its PortAudio and JACK threads) on the others. In one process only the worker is pinned:
    # PortAudio made its JACK thread when it initialised, before any engine.
    pin_cpus: bool = False
    # Live only: the load governor (realtime/governor.py) steps an overloaded model down, then plays dry. False
    # keeps the model at its steps whatever its load: for measuring what the model itself does live (its
    # dropouts then count), never for a performance.
    governor: bool = True
    # Live only: after its work the worker polls this long for the next block before it sleeps (realtime/worker.py
    # _spin): a vCPU that sleeps between strides wakes cold and the next call is slower. 0: sleep at once.
    spin_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.stereo_mode not in STEREO_MODES:
            raise StylehostError(f"stereo_mode must be one of {STEREO_MODES}, got {self.stereo_mode!r}")
        if self.blocksize < 1 or self.sample_rate < 1000:
            raise StylehostError(f"need blocksize >= 1 and a sample rate >= 1000 Hz, got {self}")
        if not 0.0 <= self.spin_ms <= 100.0:
            raise StylehostError(f"spin_ms must be in 0..100, got {self.spin_ms}")
        if self.in_channels < 1 or self.out_channels < 1:
            raise StylehostError("need at least one input and one output channel")


class Engine(WorkerSide, CallbackSide):
    """Runs ``Processor`` instances (one per processed channel) in real time or offline.

    The methods come from the thread-role modules (callback.py, worker.py with faults.py and mix.py);
    the state they share is declared in state.py and built here."""

    def __init__(
        self,
        make_processor: Callable[[], Processor],
        config: EngineConfig | None = None,
        params: EngineParams | None = None,
    ) -> None:
        self.config = cfg = config or EngineConfig()
        n_proc = cfg.in_channels if cfg.stereo_mode == "per-channel" else 1
        self.processors = [make_processor() for _ in range(n_proc)]
        proc = self.processors[0]
        self.model_rate = proc.sample_rate
        self._params = params or EngineParams()
        self._params_lock = threading.Lock()  # writers only; the worker reads the reference lock-free
        self._applied: EngineParams | None = None
        B, R = cfg.blocksize, cfg.sample_rate
        ring = max(int(cfg.ring_seconds * R), 8 * B)
        # The callback's rings and counters: in shared memory when the callback runs in a process of its
        # own (cfg.callback_process, realtime/device_process.py), else plain arrays.
        self.shared = CallbackMemory.create(ring, cfg.in_channels, cfg.out_channels) if cfg.callback_process else None
        if self.shared is not None:
            self._in_ring, self._out_ring = self.shared.rings()
        else:
            self._in_ring = RingBuffer(ring, cfg.in_channels)
            self._out_ring = RingBuffer(ring, cfg.out_channels)
        self._model_ring = RingBuffer(max(int(cfg.ring_seconds * self.model_rate), 4 * proc.stride), n_proc)
        self._dry_ring = RingBuffer(ring, cfg.in_channels)
        self._to_model = StreamResampler(R, self.model_rate, n_proc, cfg.resample_quality)
        self._to_device = StreamResampler(self.model_rate, R, n_proc, cfg.resample_quality)
        self.latency = measure_latency(cfg, proc)
        self._prime = int(self.latency.block + self.latency.buffering + self.latency.margin)
        self._dry_delay = int(round(self.latency.processor + self.latency.resampler))
        # Worker buffers (allocation here is fine, but there is no need for it per block).
        self._in_block = np.zeros((B, cfg.in_channels), np.float32)
        self._windows = np.zeros((n_proc, proc.window), np.float32)
        self._stride_in = np.zeros((proc.stride, n_proc), np.float32)
        self._stride_out = np.zeros((proc.stride, n_proc), np.float32)
        self._dry = np.zeros((ring, cfg.in_channels), np.float32)
        self._out_map = np.arange(cfg.out_channels) % n_proc
        self._dry_map = np.arange(cfg.out_channels) % cfg.in_channels
        smooth = max(1, int(cfg.smoothing_ms * R / 1000))
        self._gain = Ramp(1.0, smooth)
        self._wet = Ramp(1.0, smooth)
        self._dry_gain = Ramp(0.0, smooth)
        # The wet follows the input's loudness (params.match_level), for processors that change it.
        self.level = LevelMatcher(R)
        self._level_matched = not proc.preserves_level
        # Callback-side state (callback.py): preallocated so the callback only copies and multiplies in place.
        self._init_callback(R, B, cfg.out_channels, cfg.fade_ms, self._in_ring, self._out_ring,
                            self.shared.counts if self.shared is not None else None)
        # Worker counters (single writer each; readers tolerate staleness).
        self._out_overruns = 0  # the worker's (output ring full)
        self.skipped = 0
        self.bad_input = 0  # non-finite input samples replaced by 0
        self.bad_output = 0  # processor calls whose output was not finite (zeroed, fell back to dry)
        self.processor_errors = 0  # processor calls (or set_params) that raised (fell back to dry)
        self.worker_errors = 0  # anything else the worker survived
        self.limited = 0  # output samples the soft clip changed
        self.last_error = ""
        # Fallback to dry after a model fault: 1 = wet as set, 0 = dry only; ramped over the fade.
        self._fallback = Ramp(1.0, self._fade_len)
        self._recover_calls = -(-proc.window // proc.stride) + 1  # a whole clean window, then wet again
        self._unhealthy = 0
        self.level.reset()
        self._compute_times = np.zeros(4096, np.float64)
        self.compute_count = 0
        self.dry_strides = 0
        self._load = 0.0
        # Live only (start/stop): when compute stops fitting the stride, fewer steps, then dry.
        self.governor = LoadGovernor(proc.stride / self.model_rate, self._params.steps)
        self._governing = False
        self._in_peak = 0.0
        self._out_peak = 0.0
        # Taps of the recent input (after gain) and output for a panel's spectrogram: written by the
        # worker, never by the callback, and they overwrite instead of waiting for a slow reader.
        self.input_tap = SignalTap(max(1, int(cfg.tap_seconds * R)), self._max_block)
        self.output_tap = SignalTap(max(1, int(cfg.tap_seconds * R)), self._max_block)
        # Threading (live only).
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r = self._wake_w = -1
        self.realtime_priority = False  # whether the worker got SCHED_FIFO
        self.pinned_cpus: list[int] = []  # the worker's CPUs when pin_cpus took effect
        self.trace: CallTrace | None = None  # per-call records, off unless enable_trace
        self.reset()

    # ---- latency -------------------------------------------------------------------------------

    def set_device_latency(self, input_s: float, output_s: float) -> None:
        """Record the stream's reported buffer latencies (seconds) in ``latency``."""
        self.latency = with_device_latency(self.latency, input_s, output_s)

    @property
    def overruns(self) -> int:
        """Samples lost to a full ring: input the callback could not store plus output the worker could not."""
        return self._in_overruns + self._out_overruns

    # ---- parameters and status (any thread) ------------------------------------------------------

    @property
    def params(self) -> EngineParams:
        return self._params

    def set_params(self, params: EngineParams | None = None, **changes: object) -> EngineParams:
        """Swap in a new snapshot (thread-safe); the worker applies it at its next block."""
        with self._params_lock:  # audit: params-writer-lock
            base = params if params is not None else self._params
            self._params = base.replace(**changes) if changes else base
            return self._params

    def status(self) -> EngineStatus:
        """A snapshot for a status line or panel; peaks reset on each call."""
        status = EngineStatus(
            latency_ms=self.latency.total_ms,
            algorithmic_latency_ms=self.latency.algorithmic_ms,
            load=self._load,
            dropouts=self.dropouts,
            xruns=self.xruns,
            overruns=self.overruns,
            skipped=self.skipped,
            input_peak=self._in_peak,
            output_peak=self._out_peak,
            processor_errors=self.processor_errors + self.worker_errors,
            bad_input=self.bad_input,
            bad_output=self.bad_output,
            limited=self.limited,
            fallback=self._unhealthy > 0,
            last_error=self.last_error,
            level_gain_db=self.level.gain_db if self._matching_level else 0.0,
            overload=self.governor.degraded if self._governing else "",
            steps_running=self.governor.cap if self._governing else self._params.steps,
        )
        self._in_peak = self._out_peak = 0.0
        return status

    def enable_trace(self, capacity: int = CALLTRACE_CAPACITY) -> CallTrace:
        """Record every processor call from now on (realtime/calltrace.py); call while stopped."""
        self.disable_trace()
        stride_s = self.processors[0].stride / self.model_rate
        trace = CallTrace(stride_s, capacity, margin_s=self.config.margin_ms / 1000.0)
        trace.instrument(self.processors)
        self.trace = trace
        return trace

    def disable_trace(self) -> None:
        """Stop recording and unwrap the processors' backends; the trace object keeps its records."""
        if self.trace is not None:
            self.trace.restore()
            self.trace = None

    def compute_times(self) -> np.ndarray:
        """Seconds per processor call, the most recent (up to 4096) calls."""
        n = min(self.compute_count, len(self._compute_times))
        return self._compute_times[:n].copy()

    # ---- while stopped ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Empty every buffer and prime the output with the fixed latency (only while stopped)."""
        for ring in (self._in_ring, self._out_ring, self._model_ring, self._dry_ring):
            ring.clear()
        self._out_ring.write_zeros(self._prime)
        self._dry_ring.write_zeros(self._dry_delay)
        self._windows[:] = 0.0
        self._to_model.reset()
        self._to_device.reset()
        for p in self.processors:
            p.reset()
        self._debt = 0
        self._last[:] = 0.0
        self._fade_in_pos = self._fade_len
        self._unhealthy = 0
        self._fallback.set(1.0, immediate=True)
