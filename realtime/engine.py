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

Fixed latency: the output ring is primed with P zeros, so output sample n is input sample n - L,
L = P + content delay (processor delay and resampler content delays, at the device rate). P must
cover what the chain holds back: after the worker has consumed N input samples it has produced
production(N) <= N output samples (a stride waits to fill, soxr holds a few samples), and the
callback that follows needs B more. So P = B + max_N (N - production(N)) + margin, where the max is
measured at construction by running the same resamplers and stride on silence with this block size
(exact for this chunk pattern; arithmetic alone would miss soxr's internal chunking).

Worked example (48 kHz device, 24 kHz STFT passthrough with stride 192, delay 384, B = 256):
stride wait 384 device samples, resampler hold-back ~360, B 256, margin 4 ms = 192, so P ~ 1190;
content delay 2*384 + ~3.7 (soxr) = ~772; L ~ 1962 samples = ~41 ms, plus the device buffers.

When the worker is late the callback fills the gap with the last good sample faded to zero, counts
a dropout and remembers how many samples it owes; late samples are dropped when they arrive, so the
latency stays exactly L after recovery. A worker that falls far behind skips input to catch up.

Bad input and failing models (docs/reliability.md), all in the worker so the callback stays copy-only:
non-finite input samples become 0 and the input is clipped to +-INPUT_CEILING before the dry line and
the processor (so no NaN enters a resampler or a model's history); a processor that raises or returns
non-finite samples is reset, its output zeroed, and the mix crossfades to the dry line (same latency)
until a whole window of clean calls has passed; the mixed output goes through a soft clip that is the
identity below LIMIT_KNEE and never exceeds 1.0.
"""

from __future__ import annotations

import dataclasses
import math
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from diffusion.errors import StylehostError
from realtime.governor import LoadGovernor
from realtime.level import LevelMatcher
from realtime.params import EngineParams, EngineStatus, Latency
from realtime.processor import Processor
from realtime.resample import QUALITY, StreamResampler
from realtime.ringbuffer import RingBuffer
from realtime.tap import SignalTap

STEREO_MODES = ("mid", "per-channel")
INPUT_CEILING = 8.0  # +18 dBFS: loud input passes, absurd values (1e30) never reach a model
PROCESSOR_CEILING = 8.0  # a wet sample beyond this is a model fault, not audio; keeps float32 sums finite
LIMIT_KNEE = 0.9  # output soft clip: identity below, tanh knee above, never beyond 1.0


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

    def __post_init__(self) -> None:
        if self.stereo_mode not in STEREO_MODES:
            raise StylehostError(f"stereo_mode must be one of {STEREO_MODES}, got {self.stereo_mode!r}")
        if self.blocksize < 1 or self.sample_rate < 1000:
            raise StylehostError(f"need blocksize >= 1 and a sample rate >= 1000 Hz, got {self}")
        if self.in_channels < 1 or self.out_channels < 1:
            raise StylehostError("need at least one input and one output channel")


class Engine:
    """Runs ``Processor`` instances (one per processed channel) in real time or offline."""

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
        self._in_ring = RingBuffer(ring, cfg.in_channels)
        self._out_ring = RingBuffer(ring, cfg.out_channels)
        self._model_ring = RingBuffer(max(int(cfg.ring_seconds * self.model_rate), 4 * proc.stride), n_proc)
        self._dry_ring = RingBuffer(ring, cfg.in_channels)
        self._to_model = StreamResampler(R, self.model_rate, n_proc, cfg.resample_quality)
        self._to_device = StreamResampler(self.model_rate, R, n_proc, cfg.resample_quality)
        self.latency = self._compute_latency(proc)
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
        self._gain = _Ramp(1.0, smooth)
        self._wet = _Ramp(1.0, smooth)
        self._dry_gain = _Ramp(0.0, smooth)
        # The wet follows the input's loudness (params.match_level), for processors that change it.
        self.level = LevelMatcher(R)
        self._level_matched = not proc.preserves_level
        # Callback-side state: preallocated so the callback only copies and multiplies in place.
        self._fade_len = max(1, int(cfg.fade_ms * R / 1000))
        self._max_block = max(8192, 4 * B)
        fade = np.clip(1.0 - np.arange(self._max_block) / self._fade_len, 0.0, 1.0).astype(np.float32)
        self._fade_out = fade
        self._fade_in = np.ascontiguousarray(1.0 - fade[: self._fade_len])[:, None]
        self._fade_in_pos = self._fade_len  # == fade_len: not fading in
        self._last = np.zeros(cfg.out_channels, np.float32)
        self._debt = 0
        # Counters (single writer each; readers tolerate staleness).
        self.dropouts = 0
        self.xruns = 0
        self.overruns = 0
        self.skipped = 0
        self.blocks = 0
        self.bad_input = 0  # non-finite input samples replaced by 0
        self.bad_output = 0  # processor calls whose output was not finite (zeroed, fell back to dry)
        self.processor_errors = 0  # processor calls (or set_params) that raised (fell back to dry)
        self.worker_errors = 0  # anything else the worker survived
        self.limited = 0  # output samples the soft clip changed
        self.last_error = ""
        # Fallback to dry after a model fault: 1 = wet as set, 0 = dry only; ramped over the fade.
        self._fallback = _Ramp(1.0, self._fade_len)
        self._recover_calls = -(-proc.window // proc.stride) + 1  # a whole clean window, then wet again
        self._unhealthy = 0
        self.level.reset()
        self._compute_times = np.zeros(4096, np.float64)
        self.compute_count = 0
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
        self.reset()

    # ---- latency -------------------------------------------------------------------------------

    def _compute_latency(self, proc: Processor) -> Latency:
        """Measure max_N (N - production(N)) by running fresh resamplers on silence (see module doc)."""
        cfg, B, R, r = self.config, self.config.blocksize, self.config.sample_rate, self.model_rate
        to_model = StreamResampler(R, r, 1, cfg.resample_quality)
        to_device = StreamResampler(r, R, 1, cfg.resample_quality)
        block = np.zeros((B, 1), np.float32)
        stride = np.zeros((proc.stride, 1), np.float32)
        pending = produced = deficit = 0
        # 5 s covers the count pattern many times over: at 44.1 kHz it wanders by a few samples
        # with period lcm(B, 147) and never drifts (checked over an hour); 2 samples of slack on top.
        blocks = max(128, int(5.0 * R / B))
        for k in range(1, blocks + 1):
            pending += len(to_model.process(block))
            while pending >= proc.stride:
                pending -= proc.stride
                produced += len(to_device.process(stride))
            deficit = max(deficit, k * B - produced)
        if not (to_model.identity and to_device.identity):
            deficit += 2
        scale = R / r
        return Latency(
            sample_rate=R,
            processor=proc.delay_samples * scale,
            resampler=to_model.content_delay * scale + to_device.content_delay,
            buffering=deficit,
            block=B,
            margin=int(math.ceil(cfg.margin_ms * R / 1000)),
        )

    def set_device_latency(self, input_s: float, output_s: float) -> None:
        """Record the stream's reported buffer latencies (seconds) in ``latency``."""
        R = self.config.sample_rate
        self.latency = dataclasses.replace(
            self.latency, device_input=round(input_s * R), device_output=round(output_s * R)
        )

    # ---- parameters and status -----------------------------------------------------------------

    @property
    def params(self) -> EngineParams:
        return self._params

    def set_params(self, params: EngineParams | None = None, **changes: object) -> EngineParams:
        """Swap in a new snapshot (thread-safe); the worker applies it at its next block."""
        with self._params_lock:
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

    @property
    def _matching_level(self) -> bool:
        """The level match is on (params) and this processor changes level (DSP stand-ins do not)."""
        return self._params.match_level and self._level_matched

    def compute_times(self) -> np.ndarray:
        """Seconds per processor call, the most recent (up to 4096) calls."""
        n = min(self.compute_count, len(self._compute_times))
        return self._compute_times[:n].copy()

    # ---- device side: the callback ---------------------------------------------------------------

    def process_block(self, indata: np.ndarray, outdata: np.ndarray, status_flags: object = None) -> None:
        """Move one block: indata (frames, in_channels) in, outdata (frames, out_channels) out.

        Real-time safe: copies through preallocated rings, multiplies in place, no allocation of
        sample buffers, no locks, no logging. Keep it that way; the worker does everything else.
        """
        if status_flags:
            self.xruns += 1
        frames = len(indata)
        written = self._in_ring.write(indata)
        if written < frames:
            self.overruns += frames - written
        if self._debt:
            self._debt -= self._out_ring.discard(self._debt)
        got = self._out_ring.read(outdata)
        if got < frames:
            self._underrun(outdata, got, frames)
        elif self._fade_in_pos < self._fade_len:
            n = min(frames, self._fade_len - self._fade_in_pos)
            fade = self._fade_in[self._fade_in_pos : self._fade_in_pos + n]
            np.multiply(outdata[:n], fade, out=outdata[:n])
            self._fade_in_pos += n
        if frames:
            self._last[:] = outdata[frames - 1]
        self.blocks += 1
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"\0")  # self-pipe: a syscall, no Python lock
            except BlockingIOError:
                pass  # the worker has plenty of wake-ups queued already

    def _underrun(self, outdata: np.ndarray, got: int, frames: int) -> None:
        """Fill outdata[got:] with the last good sample fading to zero; owe the missing samples."""
        self.dropouts += 1
        missing = frames - got
        self._debt += missing
        m = min(missing, self._max_block)
        last = self._last if got == 0 else outdata[got - 1]
        for c in range(outdata.shape[1]):
            np.multiply(self._fade_out[:m], last[c], out=outdata[got : got + m, c])
        if missing > m:
            outdata[got + m :] = 0.0
        self._fade_in_pos = 0

    # ---- worker side -------------------------------------------------------------------------------

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

    def pump(self) -> int:
        """Process the whole blocks that were waiting when called; return how many blocks.

        Bounded on purpose: an overloaded model never empties the ring (input keeps arriving), and an
        unbounded loop kept the worker from ever seeing its stop flag or its catch-up skip again.
        """
        self._apply_params()
        B = self.config.blocksize
        backlog = self._in_ring.read_available
        if backlog > self._prime + 2 * B:
            self._skip(backlog // B * B - B)
        todo = self._in_ring.read_available // B  # marker: pump-bounded
        done = 0
        while done < todo and not self._stop.is_set():
            self._in_ring.read(self._in_block)
            self._worker_block(self._in_block)
            done += 1
        return done

    def _skip(self, n: int) -> None:
        """Fell far behind: drop n input samples and stand n silent samples in for their output.

        The placeholders keep output index = input index + latency for everything after the skip
        (the callback's debt discards them if they arrive late); the dry line skips the same input.
        """
        n = self._in_ring.discard(n)
        self._out_ring.write_zeros(n)
        self.skipped += n

    def _apply_params(self) -> None:
        params = self._params
        if params is self._applied:
            return
        first = self._applied is None  # the first snapshot applies at once, no ramp from defaults
        self._gain.set(10.0 ** (params.input_gain_db / 20.0), first)
        self._wet.set(0.0 if params.bypass else params.wet, first)
        self._dry_gain.set(1.0 if params.bypass else 1.0 - params.wet, first)
        model = params.model_params()
        if self._applied is None or model != self._applied.model_params():
            cap = self.governor.request(params.steps)
            if self._governing:
                model["steps"] = max(1, cap)  # the governor's cap; 0 (dry) keeps one step for the retry
            self._set_processor_params(**model)
        self._applied = params

    def _set_processor_params(self, **params: object) -> None:
        """Hand the processors new parameters (the user's, or the governor's step cap); a refusal is a fault."""
        for c, p in enumerate(self.processors):
            try:
                p.set_params(**params)
            except Exception as exc:  # a processor refusing a value must not kill the worker
                self._processor_fault(c, exc)

    def _worker_block(self, block: np.ndarray) -> None:
        if not np.isfinite(block).all():  # NaN/inf from a driver or a file: never into a model's history
            bad = ~np.isfinite(block)
            self.bad_input += int(bad.sum())
            block[bad] = 0.0
        np.clip(block, -INPUT_CEILING, INPUT_CEILING, out=block)  # before the gain too: 3e38 * 2 overflows
        block *= self._gain.next(len(block))[:, None]
        np.clip(block, -INPUT_CEILING, INPUT_CEILING, out=block)
        self._in_peak = max(self._in_peak, float(np.max(np.abs(block))))
        self.input_tap.write(block)
        self._dry_ring.write(block)
        mono = block.mean(axis=1, keepdims=True) if len(self.processors) == 1 else block
        self._model_ring.write(self._to_model.process(np.ascontiguousarray(mono, dtype=np.float32)))
        stride = self._stride_in.shape[0]
        while self._model_ring.read_available >= stride:
            self._model_ring.read(self._stride_in)
            self._run_processors()
            self._emit(self._to_device.process(self._stride_out))

    def _run_processors(self) -> None:
        stride = self._stride_in.shape[0]
        win = self._windows
        t0 = time.perf_counter()
        win[:, :-stride] = win[:, stride:]
        win[:, -stride:] = self._stride_in.T
        if self._governing and self.governor.cap == 0:
            self._play_dry()
            return
        faults = self.processor_errors + self.bad_output
        for c, proc in enumerate(self.processors):
            try:
                proc.process(win[c], self._stride_out[:, c])
            except Exception as exc:  # a backend failing mid-run: dry at the same latency, never a dead worker
                self._processor_fault(c, exc)
        out = self._stride_out
        if not np.isfinite(out).all():
            for c in np.flatnonzero(~np.isfinite(out).all(axis=0)).tolist():
                self._processor_fault(int(c), None)
        np.clip(out, -PROCESSOR_CEILING, PROCESSOR_CEILING, out=out)
        if self.processor_errors + self.bad_output > faults:
            self._unhealthy = self._recover_calls
        elif self._unhealthy:
            self._unhealthy -= 1
            if not self._unhealthy:
                self._fallback.set(1.0)  # a whole window of clean calls: crossfade back to wet
        dt = time.perf_counter() - t0
        self._compute_times[self.compute_count % len(self._compute_times)] = dt
        self.compute_count += 1
        budget = stride / self.model_rate
        self._load = 0.9 * self._load + 0.1 * (dt / budget)
        if self._governing:
            cap = self.governor.observe(dt, self.dropouts)  # marker: governor-observes
            if cap == 0:
                self._fallback.set(0.0)  # this stride's wet is good: ramp to the dry line
            elif cap is not None:
                self._set_processor_params(steps=cap)

    def _play_dry(self) -> None:
        """Governor cap 0: no model call this stride; the dry line plays at the same latency."""
        self._stride_out[:] = 0.0
        self._fallback.set(0.0, immediate=True)
        self._load *= 0.9
        if self.governor.idle() is not None:  # time to retry one step: fresh state, a clean window first
            for p in self.processors:
                p.reset()
            self._set_processor_params(steps=1)
            self._unhealthy = self._recover_calls

    def _processor_fault(self, c: int, exc: Exception | None) -> None:
        """Processor ``c`` raised (exc) or returned non-finite samples (None): zero its output, reset its
        state (an overlap-add tail holding NaN would poison every later call) and fall back to dry."""
        self._stride_out[:, c] = 0.0
        if exc is None:
            self.bad_output += 1
            self.last_error = f"processor {c} returned non-finite samples"
        else:
            self.processor_errors += 1
            self.last_error = f"processor {c}: {type(exc).__name__}: {exc}"[:300]
        try:
            self.processors[c].reset()
        except Exception as reset_exc:  # noqa: BLE001 - keep streaming dry whatever the processor does
            self.last_error += f" (reset failed: {reset_exc})"[:100]
        self._fallback.set(0.0, immediate=True)  # this stride's wet is zeros: a ramp would be a 5 ms dip
        self._unhealthy = self._recover_calls

    def _emit(self, wet: np.ndarray) -> None:
        """Mix wet (frames, n_proc) with the latency-aligned dry signal into the output ring."""
        n = len(wet)
        if n == 0:
            return
        dry = self._dry[:n]
        got = self._dry_ring.read(dry)
        dry[got:] = 0.0
        wet_gain, fallback = self._wet.next(n), self._fallback.next(n)
        level = self.level.gains(wet, dry) if self._matching_level else 1.0
        out = wet[:, self._out_map] * (wet_gain * fallback * level)[:, None]
        # During a fallback the wet share goes to the dry line, so the level stays the same.
        out += dry[:, self._dry_map] * (self._dry_gain.next(n) + wet_gain * (1.0 - fallback))[:, None]
        if not np.isfinite(out).all():  # cannot happen with the checks above; the device must never see NaN
            self.bad_output += 1
            np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        self.limited += soft_clip(out)
        self._out_peak = max(self._out_peak, float(np.max(np.abs(out))))
        self.output_tap.write(out)
        written = self._out_ring.write(out.astype(np.float32, copy=False))
        if written < n:
            self.overruns += n - written

    # ---- live threading --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread (live use); the callback wakes it through a non-blocking pipe."""
        if self._thread is not None:
            return
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stop.clear()
        self.governor = LoadGovernor(self.governor.stride_s, self._params.steps, self.governor.config)
        self._governing = True
        self._thread = threading.Thread(target=self._run, name="stylehost-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        os.write(self._wake_w, b"\0")
        self._thread.join(timeout=5.0)
        if self._thread.is_alive():  # one processor call still running; it sees the flag right after
            self._thread.join(timeout=30.0)
        self._thread = None
        self._governing = False
        w, r = self._wake_w, self._wake_r
        self._wake_w = self._wake_r = -1
        os.close(w)
        os.close(r)

    def _run(self) -> None:
        self.realtime_priority = _raise_priority()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._wake_r], [], [], 0.1)
            if ready:
                os.read(self._wake_r, 4096)
            try:
                self.pump()
            except Exception as exc:  # the worker must outlive any bug: the callback keeps playing (dropouts)
                self.worker_errors += 1
                self.last_error = f"worker: {type(exc).__name__}: {exc}"[:300]
                time.sleep(0.01)


def soft_clip(x: np.ndarray, knee: float = LIMIT_KNEE) -> int:
    """In place: identity for |x| <= knee, then a tanh knee with slope 1 at ``knee`` approaching 1.0.

    Why a soft clip and not a look-ahead limiter: it adds no latency and is transparent for normal
    levels (the passthrough stays exact below the knee); it only has to keep a model blow-up or a
    +24 dB input gain from reaching the device as full-scale square waves. Returns samples changed.
    """
    mag = np.abs(x)
    over = mag > knee
    n = int(np.count_nonzero(over))
    if n:
        head = 1.0 - knee
        x[over] = np.sign(x[over]) * (knee + head * np.tanh((mag[over] - knee) / head))
    return n


def _raise_priority(priority: int = 5) -> bool:
    """Best effort: SCHED_FIFO for the calling (worker) thread, below JACK's audio threads.

    Why: on a loaded machine (a training job on both cores) a normal-priority worker is starved
    for tens of ms and every block drops out. Needs CAP_SYS_NICE or an rtprio limit (the audio
    group on Linux); without it the engine still runs, just less robustly.
    """
    if not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # 0: this thread on Linux
    except (PermissionError, OSError):
        return False
    return True


class _Ramp:
    """A linearly smoothed gain: reaches a new target ``length`` samples after it is set, no clicks."""

    def __init__(self, value: float, length: int) -> None:
        self.value = value
        self.target = value
        self.length = length
        self._step = 0.0

    def set(self, target: float, immediate: bool = False) -> None:
        self.target = target
        if immediate:
            self.value = target
        self._step = abs(target - self.value) / self.length

    def next(self, n: int) -> np.ndarray:
        if self.value == self.target:
            return np.full(n, self.value, np.float32)
        direction = 1.0 if self.target > self.value else -1.0
        values = self.value + direction * self._step * np.arange(1, n + 1)
        values = np.minimum(values, self.target) if direction > 0 else np.maximum(values, self.target)
        self.value = float(values[-1])
        return values.astype(np.float32)


