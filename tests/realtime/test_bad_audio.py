"""Bad audio through the engine (offline pump, the code live runs): the output stays finite and bounded,
and the processor's history recovers once the bad input ends. docs/reliability.md lists what each guards."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.engine import LIMIT_KNEE, Engine, EngineConfig, soft_clip
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
    assert engine.bad_input == 520 and engine.status().bad_input == 520
    L = int(engine.latency.algorithmic)
    recovered = 12520 + L + 48000 * StftPassthroughProcessor().window // 24000 + 1024  # one window (+ resampler)
    np.testing.assert_allclose(y[recovered:], y_clean[recovered:], atol=1e-6)


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
    with +24 dB input gain on top (the most a user can set)."""
    rng = np.random.default_rng(0)
    engine = engine_48k()
    engine.set_params(input_gain_db=24.0)
    y = run(engine, make(48000, rng)[:, None])
    assert np.isfinite(y).all(), name
    assert np.abs(y).max() <= 1.0, name


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
    """Returns NaN on calls 50-52 and keeps NaN in its overlap-add tail until reset(), as a model
    whose numerics blow up on one window would."""

    calls = 0

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        super().process(window, out)
        if 50 <= self.calls <= 52:
            self._acc[:] = np.nan
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
    # Passthrough wet == dry, so a correct fallback is invisible: the output is x delayed by L everywhere
    # except the fade into and out of the dry line (5 ms ramps around the zeroed faulty strides).
    err = np.abs(y[L:, 0] - x[: len(y) - L, 0])
    assert (err > 1e-4).sum() < 0.06 * 24000  # the fades only
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
