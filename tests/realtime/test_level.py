"""Level matching: the wet follows the input's loudness, slowly, within limits, and holds in silence."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.engine import Engine, EngineConfig
from realtime.level import LevelMatchConfig, LevelMatcher
from realtime.params import EngineParams
from realtime.processor import PassthroughProcessor
from tests.realtime.test_engine import run

RATE = 24000


class QuietModel(PassthroughProcessor):
    """A stand-in for a style model that plays 12 dB below its input (and says it does not keep level)."""

    preserves_level = False

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        super().process(window, out)
        out *= 0.25


def db(x: np.ndarray) -> float:
    return 10.0 * np.log10(np.mean(np.square(x, dtype=np.float64)))


def tone(seconds: float, amp: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * 330.0 * t)).astype(np.float32)[:, None]


def feed(m: LevelMatcher, wet: np.ndarray, dry: np.ndarray, block: int = 384) -> np.ndarray:
    gains = [m.gains(wet[i : i + block], dry[i : i + block]) for i in range(0, len(wet), block)]
    return np.concatenate(gains)


def test_matcher_converges_to_the_level_ratio_and_ramps_smoothly() -> None:
    dry = tone(6.0, 0.3)
    m = LevelMatcher(RATE)
    gains = feed(m, 0.5 * dry, dry)
    assert m.gain_db == pytest.approx(6.02, abs=0.05)  # wet 6 dB low -> +6 dB
    assert np.max(np.abs(np.diff(gains))) < 1e-3  # a ramp, no steps (no zipper noise)
    # Slew-limited: after 0.1 s it has moved at most 0.6 dB (6 dB/s), the first notes do not jump.
    early = LevelMatcher(RATE)
    feed(early, 0.5 * dry[: RATE // 10], dry[: RATE // 10])
    assert 0.3 < early.gain_db <= 0.6 + 1e-6


def test_matcher_limits_and_holds_in_silence() -> None:
    dry = tone(6.0, 0.3)
    m = LevelMatcher(RATE, LevelMatchConfig(max_gain_db=12.0))
    feed(m, 0.001 * dry, dry)  # a near-silent model output is not boosted by 60 dB
    assert m.gain_db == pytest.approx(12.0, abs=1e-6)
    m.reset()
    feed(m, 0.5 * dry, dry)
    held = m.gain
    silence = np.zeros((RATE * 60, 1), np.float32)
    feed(m, 1e-4 * np.random.default_rng(0).standard_normal(silence.shape).astype(np.float32), silence)
    assert m.gain == held  # a minute of silence: the gain does not wander to the noise floor


@pytest.mark.parametrize("match", [True, False])
def test_engine_output_follows_input_level(match: bool) -> None:
    engine = Engine(QuietModel, EngineConfig(sample_rate=RATE, blocksize=256), EngineParams(match_level=match))
    x = tone(8.0, 0.2)
    y = run(engine, x)
    tail = slice(-2 * RATE, None)
    gap = db(y[tail]) - db(x[tail])
    if match:
        assert abs(gap) < 0.5
        assert engine.status().level_gain_db == pytest.approx(12.04, abs=0.3)
    else:
        assert gap == pytest.approx(-12.04, abs=0.1)
        assert engine.status().level_gain_db == 0.0


def test_level_preserving_processors_are_left_exact() -> None:
    """DSP stand-ins keep their level by construction: no matching, so the passthrough stays exact."""
    engine = Engine(PassthroughProcessor, EngineConfig(sample_rate=RATE, blocksize=256))
    x = tone(3.0, 0.2)
    y = run(engine, x)
    L = int(engine.latency.algorithmic)
    np.testing.assert_allclose(y[L:], x[: len(y) - L], atol=1e-6)
    assert engine.status().level_gain_db == 0.0
