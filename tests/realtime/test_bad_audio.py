"""Bad audio through the engine (offline pump, the code live runs): the output stays finite and bounded,
and the processor's history recovers once the bad input ends. docs/reliability.md lists what each guards."""

from __future__ import annotations

import time

import numpy as np
import pytest

from realtime.engine import INPUT_CEILING, LIMIT_KNEE, Engine, EngineConfig, soft_clip
from realtime.processor import Processor, StftPassthroughProcessor


def run(engine: Engine, x: np.ndarray) -> np.ndarray:
    """Feed x block by block (callback then worker), as live with zero compute time."""
    B = engine.config.blocksize
    n = len(x) // B * B
    y = np.zeros((n, engine.config.out_channels), np.float32)
    for i in range(0, n, B):
        engine.process_block(np.ascontiguousarray(x[i : i + B]), y[i : i + B])
        engine.pump()
    return y


class LeakyHistory(StftPassthroughProcessor):
    """STFT passthrough plus a recursive state (like a model's running statistics): one NaN in its input
    and every later output is NaN until reset(), which is what a real model's history does."""

    def __init__(self) -> None:
        super().__init__()
        self.state = 0.0

    def reset(self) -> None:
        super().reset()
        self.state = 0.0

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        super().process(window, out)
        self.state = 0.99 * self.state + 0.01 * float(np.mean(window))
        out += 0.0 * self.state  # NaN * 0 is NaN: the state poisons the output once it holds NaN


def engine_48k(make: type[Processor] = StftPassthroughProcessor) -> Engine:
    return Engine(make, EngineConfig(sample_rate=48000, blocksize=256))


def sine(seconds: float, amp: float = 0.3, rate: int = 48000, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)[:, None]


def test_nan_and_inf_burst_never_reach_the_output_and_the_history_recovers() -> None:
    """Guards the worker's input sanitiser: NaN/inf become 0 before the resampler and the processor, so
    the output is finite throughout and equals the clean run again one window after the burst ends."""
    x = sine(1.0)
    bad = x.copy()
    bad[12000:12480] = np.nan
    bad[12480:12500] = np.inf
    bad[12500:12520] = -np.inf
    clean_engine, engine = engine_48k(LeakyHistory), engine_48k(LeakyHistory)
    y_clean, y = run(clean_engine, x), run(engine, bad)
    assert np.isfinite(y).all()
    assert engine.bad_output == engine.processor_errors == 0, "a NaN reached the processor (its history)"
    assert engine.bad_input == 520 and engine.status().bad_input == 520
    L = int(engine.latency.algorithmic)
    recovered = 12520 + L + 48000 * StftPassthroughProcessor().window // 24000 + 1024  # one window (+ resampler)
    np.testing.assert_allclose(y[recovered:], y_clean[recovered:], atol=1e-6)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # an overflow warning in the worker is a bug (and I/O)
@pytest.mark.parametrize(
    "name,make",
    [
        ("dc", lambda n, rng: np.full(n, 0.8, np.float32)),
        ("clipped square", lambda n, rng: np.sign(np.sin(np.arange(n) * 0.05)).astype(np.float32)),
        ("full-scale noise", lambda n, rng: rng.uniform(-1, 1, n).astype(np.float32)),
        ("over-range noise", lambda n, rng: (50.0 * rng.standard_normal(n)).astype(np.float32)),
        ("huge values", lambda n, rng: np.where(rng.random(n) < 0.01, 3e38, 0.0).astype(np.float32)),
        ("transients", lambda n, rng: np.where(np.arange(n) % 4800 == 0, 1.0, 1e-4).astype(np.float32)),
    ],
)
def test_hostile_signals_give_finite_output_within_full_scale(name: str, make) -> None:
    """Guards the soft clip (and the input/processor ceilings): whatever comes in, |out| <= 1 and finite,
    with +24 dB input gain on top (the most a user can set). Warnings are errors here: without the ceiling
    before the gain, 3e38 x gain overflows to inf (a RuntimeWarning printed from the audio worker)."""
    rng = np.random.default_rng(0)
    engine = engine_48k()
    engine.set_params(input_gain_db=24.0)
    y = run(engine, make(48000, rng)[:, None])
    assert np.isfinite(y).all(), name
    assert np.abs(y).max() <= 1.0, name


class Recorder(StftPassthroughProcessor):
    """Remembers the largest sample any window held: what a model would have been fed."""

    peak = 0.0

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        self.peak = max(self.peak, float(np.max(np.abs(window))))
        super().process(window, out)


def test_the_model_never_sees_more_than_the_input_ceiling() -> None:
    """Guards the input ceiling after the gain: 50x over-range noise and 3e38 spikes at +24 dB gain reach
    the processor clipped to +-INPUT_CEILING (the soft clip alone would bound the output but let a model
    see values in the hundreds). At the model's own rate, so no resampler overshoot muddies the bound."""
    rng = np.random.default_rng(1)
    engine = Engine(Recorder, EngineConfig(sample_rate=24000, blocksize=256))
    engine.set_params(input_gain_db=24.0)
    x = 50.0 * rng.standard_normal(24000)
    x[::997] = 3e38
    run(engine, x.astype(np.float32)[:, None])
    peak = engine.processors[0].peak
    assert 0 < peak <= INPUT_CEILING, f"the model saw {peak}, more than INPUT_CEILING"


class Exploding(StftPassthroughProcessor):
    """Returns huge but finite samples (a model whose activations blew up without reaching inf)."""

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        super().process(window, out)
        out[:] = 3e38


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_huge_finite_model_output_is_bounded_without_overflow() -> None:
    """Guards the wet ceiling: a processor returning +-3e38 (finite, so not a fault) is clipped to
    +-PROCESSOR_CEILING before the resampler and the mix, so nothing overflows to inf on the way (the
    resampler's sums, the soft clip's division) and the output is the clipped wet, not silence."""
    engine = Engine(Exploding, EngineConfig(sample_rate=48000, blocksize=256))
    y = run(engine, sine(0.5))
    assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
    assert engine.bad_output == 0 and np.abs(y[-4800:]).min() > 0.5, "overflow: the wet became inf/NaN"


def test_non_finite_mix_never_reaches_the_output_ring() -> None:
    """Guards the last check before the device (in _emit): the checks upstream make a NaN mix impossible
    today, so this feeds one to _emit directly; whatever a future change lets through, the device gets
    zeros and the fault is counted."""
    engine = engine_48k()
    engine._emit(np.full((192, 1), np.nan, np.float32))
    engine._emit(np.full((192, 1), np.inf, np.float32))
    out = np.empty((engine._out_ring.read_available, 1), np.float32)
    engine._out_ring.read(out)
    assert np.isfinite(out).all() and engine.bad_output == 2


def test_worker_thread_survives_an_exception_outside_the_processor() -> None:
    """Guards the worker loop's catch-all: an exception outside the processor (here the output resampler,
    once) is counted and reported, the worker thread keeps running and the signal comes back."""
    engine = Engine(StftPassthroughProcessor, EngineConfig(sample_rate=24000, blocksize=256))
    resample, calls = engine._to_device.process, [0]

    def flaky(x: np.ndarray) -> np.ndarray:
        calls[0] += 1
        if calls[0] == 20:
            raise RuntimeError("resampler bug")
        return resample(x)

    engine._to_device.process = flaky  # type: ignore[method-assign]
    x = sine(1.5, rate=24000)
    y = np.zeros_like(x)
    engine.start()
    try:
        for i in range(0, len(x) - 255, 256):
            engine.process_block(x[i : i + 256], y[i : i + 256])
            time.sleep(256 / 24000)  # about real time: the worker runs on its own thread
        time.sleep(0.05)
        assert engine._thread is not None
        alive = engine._thread.is_alive()
    finally:
        engine.stop()
    assert alive, "the worker thread died"
    assert engine.worker_errors == 1 and "resampler bug" in engine.last_error
    assert np.abs(y[-6000:]).max() > 0.25  # still streaming after the error


def test_silence_for_minutes_then_signal_is_exact() -> None:
    """Guards against state drifting during long silence (denormals, accumulators): after 3 minutes of
    zeros the engine still passes a sine through exactly, at the same latency."""
    engine = Engine(StftPassthroughProcessor, EngineConfig(sample_rate=24000, blocksize=2048))
    silence = np.zeros((180 * 24000, 1), np.float32)
    assert not run(engine, silence).any()
    x = sine(0.5, rate=24000)
    y = run(engine, x)
    L = int(engine.latency.algorithmic)
    np.testing.assert_allclose(y[L:], x[: len(y) - L], atol=1e-5)


def test_soft_clip_is_identity_below_the_knee_and_bounded_above() -> None:
    """Guards the limiter's shape: transparent for normal levels (exact passthrough stays exact)."""
    x = np.linspace(-100, 100, 200001, dtype=np.float32)
    y = x.copy()
    changed = soft_clip(y)
    inside = np.abs(x) <= LIMIT_KNEE
    np.testing.assert_array_equal(y[inside], x[inside])
    assert changed == int((~inside).sum()) and np.abs(y).max() <= 1.0
    assert np.all(np.diff(y) >= 0)  # monotonic: no fold-over distortion


class NaNBurstProcessor(StftPassthroughProcessor):
    """Returns NaN on calls 50-52 and keeps returning NaN until reset() (its state holds NaN), as a model
    whose numerics blow up on one window would (an overlap-add tail alone would flush itself)."""

    calls = 0
    poisoned = False

    def reset(self) -> None:
        super().reset()
        self.poisoned = False

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        super().process(window, out)
        self.poisoned |= 50 <= self.calls <= 52
        if self.poisoned:
            out[:] = np.nan
        self.calls += 1


class RaisingProcessor(StftPassthroughProcessor):
    """Raises on calls 50-52: a backend that fails mid-run (GPU reset, ORT error)."""

    calls = 0

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        self.calls += 1
        if 51 <= self.calls <= 53:
            raise RuntimeError("backend failed")
        super().process(window, out)


@pytest.mark.parametrize("make", [NaNBurstProcessor, RaisingProcessor])
def test_model_fault_falls_back_to_dry_at_the_same_latency_and_recovers(make: type[Processor]) -> None:
    """Guards the processor fault path: a processor that raises or returns NaN is reset and the mix goes
    to the dry line (same latency, so the output is still the input delayed by L), the fault is counted
    and reported, and the wet path comes back after a clean window. Without it the worker dies (raise)
    or NaN reaches the device."""
    engine = Engine(make, EngineConfig(sample_rate=24000, blocksize=256))
    x = sine(2.0, rate=24000)
    y = run(engine, x)
    L = int(engine.latency.algorithmic)
    assert np.isfinite(y).all()
    # Passthrough wet == dry, so a correct fallback is invisible: the output is x delayed by L everywhere.
    # The jump to dry is immediate (the faulty stride's wet is zeros) and the way back a crossfade between
    # equal signals, so no sample may differ; a zeroed stride (no fallback) differs by up to 0.3.
    err = np.abs(y[L:, 0] - x[: len(y) - L, 0])
    assert err.max() < 1e-4, f"{(err > 1e-4).sum()} samples differ from the dry line, up to {err.max()}"
    assert err[-12000:].max() < 1e-5  # recovered: exact again
    status = engine.status()
    assert status.processor_errors + status.bad_output == 3 and not status.fallback
    assert "processor 0" in status.last_error and "model faults 3" in status.line()


def test_processor_refusing_params_does_not_kill_the_worker() -> None:
    """Guards _apply_params: a processor whose set_params raises is reported, the stream keeps going."""

    class Picky(StftPassthroughProcessor):
        def set_params(self, **params: object) -> None:
            if params.get("steps") == 3:
                raise ValueError("steps 3 unsupported")

    engine = Engine(Picky, EngineConfig(sample_rate=24000, blocksize=256))
    run(engine, sine(0.2, rate=24000))
    engine.set_params(steps=3)
    y = run(engine, sine(0.5, rate=24000))
    assert np.isfinite(y).all() and np.abs(y).max() > 0.2
    assert engine.processor_errors == 1 and "steps 3 unsupported" in engine.last_error
