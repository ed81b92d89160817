"""Streaming YIN: equals its offline reference for any split, tracks tones, rejects noise, stays finite."""

from __future__ import annotations

import numpy as np
import pytest

from diffusion.pitch import YinTracker, yin_offline

RATE = 24000


def vibrato_f0(seconds: float, base: float = 220.0, cents: float = 50.0, rate_hz: float = 5.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return base * 2.0 ** (cents / 1200.0 * np.sin(2 * np.pi * rate_hz * t))


def tone(f0: np.ndarray, harmonics: int = 1) -> np.ndarray:
    """A band-limited tone following ``f0`` per sample: a sine, or a sawtooth's first ``harmonics`` partials."""
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = np.zeros(len(f0))
    for k in range(1, harmonics + 1):
        x += np.where(k * f0 < 0.45 * RATE, np.sin(k * phase) / k, 0.0)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def truth_at_hops(f0: np.ndarray, tracker: YinTracker) -> np.ndarray:
    """Reference f0 at the sample each hop's estimate belongs to (NaN before the stream's first full frame)."""
    ends = tracker.hop * np.arange(1, len(f0) // tracker.hop + 1)
    at = ends - tracker.delay_samples
    out = np.full(len(ends), np.nan)
    ok = ends >= tracker.frame_length
    out[ok] = f0[at[ok]]
    return out


def stream(tracker: YinTracker, x: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    f0s, ps, i = [], [], 0
    for n in sizes:
        f0, p = tracker.process(x[i : i + n])
        f0s.append(f0.copy())  # views of the tracker's buffers: copy before the next call
        ps.append(p.copy())
        i += n
    return np.concatenate(f0s), np.concatenate(ps)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_offline_for_any_split(seed: int) -> None:
    rng = np.random.default_rng(seed)
    f0 = np.concatenate([vibrato_f0(0.4, 110.0), np.geomspace(150.0, 900.0, int(0.5 * RATE)), vibrato_f0(0.3, 70.0)])
    x = tone(f0, harmonics=8) + 0.02 * rng.standard_normal(len(f0)).astype(np.float32)
    x[int(0.2 * RATE) : int(0.3 * RATE)] = 0.0  # a gap of silence: the held f0 must agree too
    ref_f0, ref_p = yin_offline(x)
    tracker = YinTracker(max_block=512)  # blocks of up to 5000 samples make it grow its output buffers
    for _ in range(4):  # split the input N ways at random sizes, 0 and sub-hop sizes included
        cuts = np.sort(rng.integers(0, len(x), size=int(rng.integers(5, 60))))
        sizes = list(np.diff(np.concatenate([[0], cuts, [len(x)]])).astype(int))
        tracker.reset()
        got_f0, got_p = stream(tracker, x, sizes)
        np.testing.assert_array_equal(got_f0, ref_f0)
        np.testing.assert_array_equal(got_p, ref_p)
    assert len(ref_f0) == len(x) // tracker.hop


@pytest.mark.parametrize("harmonics", [1, 40], ids=["sine", "sawtooth"])
@pytest.mark.parametrize("base", [82.0, 220.0, 660.0])
def test_tones_with_vibrato_within_20_cents(harmonics: int, base: float) -> None:
    f0 = vibrato_f0(2.0, base)
    tracker = YinTracker()
    est, p = tracker.process(tone(f0, harmonics))
    truth = truth_at_hops(f0, tracker)
    ok = ~np.isnan(truth)
    cents = 1200 * np.abs(np.log2(est[ok] / truth[ok]))
    assert np.mean(cents <= 20.0) >= 0.95, np.percentile(cents, [50, 95, 100])
    assert np.mean(tracker.voiced(p[ok])) >= 0.95


def test_estimate_is_aligned_by_its_delay() -> None:
    """A step from 220 to 330 Hz at sample s shows in the hop ending near s + delay_at(330 Hz)."""
    step = 12000
    f0 = np.where(np.arange(RATE) < step, 220.0, 330.0)
    tracker = YinTracker()
    est, _ = tracker.process(tone(f0, harmonics=4))
    full = tracker.frame_length // tracker.hop  # hops before this one still see the stream's leading silence
    first = full + int(np.argmax(est[full:] > 275.0))
    end = (first + 1) * tracker.hop
    assert abs(end - (step + tracker.delay_at(330.0))) <= 2 * tracker.hop, (end, step + tracker.delay_at(330.0))
    assert tracker.delay_samples == round(tracker.delay_at(200.0)) == 300  # 12.5 ms at the defaults


def test_silence_and_noise_are_unvoiced() -> None:
    rng = np.random.default_rng(0)
    tracker = YinTracker()
    _, p = tracker.process(np.zeros(RATE, np.float32))
    assert np.all(p == 0.0)
    for level in (0.01, 0.3):
        tracker.reset()
        _, p = tracker.process((level * rng.standard_normal(2 * RATE)).astype(np.float32))
        assert np.mean(tracker.voiced(p)) <= 0.01, np.mean(tracker.voiced(p))


HOSTILE = ["zeros", "full_scale_noise", "dc", "dc_negative", "nan_inf", "huge", "clipped_square"]


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_input_gives_finite_output(kind: str) -> None:
    rng = np.random.default_rng(1)
    n = RATE
    x = {
        "zeros": np.zeros(n),
        "full_scale_noise": rng.uniform(-1.0, 1.0, n),
        "dc": np.ones(n),
        "dc_negative": -np.ones(n),
        "nan_inf": np.where(rng.random(n) < 0.1, np.nan, np.where(rng.random(n) < 0.1, np.inf, 0.3)),
        "huge": 1e30 * rng.standard_normal(n),
        "clipped_square": np.sign(np.sin(2 * np.pi * 150.0 * np.arange(n) / RATE)),
    }[kind].astype(np.float32)
    tracker = YinTracker()
    f0, p = stream(tracker, x, [1000] * (n // 1000) + [n % 1000])
    assert np.all(np.isfinite(f0)) and np.all(np.isfinite(p))
    assert np.all((f0 >= tracker.fmin) & (f0 <= tracker.sample_rate / tracker.tau_min))
    assert np.all((p >= 0.0) & (p <= 1.0))
    if kind in ("zeros", "full_scale_noise", "dc", "dc_negative"):
        assert np.mean(tracker.voiced(p)) <= 0.01
    f0_ref, p_ref = yin_offline(x)
    np.testing.assert_array_equal(f0, f0_ref)  # the clean-up of bad samples is the same offline
    np.testing.assert_array_equal(p, p_ref)
