"""The harmonic-structure metric on synthetic notes whose harmonic amplitudes are set by hand."""

from __future__ import annotations

import numpy as np
import pytest

from diffusion.data import Note
from diffusion.harmonics import HarmonicConfig, harmonic_distance, harmonic_profile, note_frames

SR = 24000


def harmonic_tone(f0: float, amplitudes: list[float], seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(a * np.sin(2 * np.pi * (k + 1) * f0 * t) for k, a in enumerate(amplitudes))


def sawtooth(f0: float, seconds: float = 1.0) -> np.ndarray:
    return harmonic_tone(f0, [1.0 / k for k in range(1, int(11000 / f0) + 1)], seconds)


NOTE_A3 = [Note(57, 0.0, 1.0, 100)]  # 220 Hz


def test_worked_example_of_the_docstring() -> None:
    saw, sine = sawtooth(220.0), harmonic_tone(220.0, [1.0])
    saw_profile = harmonic_profile(saw, NOTE_A3, SR)
    assert saw_profile.shape == (len(note_frames(NOTE_A3, SR, SR)[0]), 10)
    expected = 40.0 - 20.0 * np.log10(np.arange(1, 11))
    np.testing.assert_allclose(saw_profile.mean(axis=0), expected, atol=0.5)
    np.testing.assert_allclose(harmonic_profile(sine, NOTE_A3, SR).mean(axis=0), [40.0] + [0.0] * 9, atol=0.1)
    assert harmonic_distance(sine, saw, NOTE_A3, SR) == pytest.approx(np.mean(expected[1:]) * 0.9, abs=0.5)


def test_sawtooth_and_sine_are_far_apart_and_gain_changes_nothing() -> None:
    saw, sine = sawtooth(330.0), harmonic_tone(330.0, [1.0])
    notes = [Note(64, 0.0, 1.0, 100)]
    assert harmonic_distance(sine, saw, notes, SR) > 20.0
    assert harmonic_distance(0.1 * saw, saw, notes, SR) < 0.01
    assert harmonic_distance(3.0 * sine, sine, notes, SR) < 0.01


def test_small_noise_moves_it_little_and_loud_noise_a_lot() -> None:
    saw = sawtooth(220.0)
    noise = np.random.default_rng(0).standard_normal(len(saw)) * np.sqrt(np.mean(saw**2))
    # White noise 30 dB under the tone's RMS; then as loud as the tone, which fills the valleys.
    small = harmonic_distance(saw + noise * 10 ** (-30 / 20), saw, NOTE_A3, SR)
    loud = harmonic_distance(saw + noise, saw, NOTE_A3, SR)
    assert small < 0.2 and loud > 5.0


def test_set_harmonic_levels_are_read_back() -> None:
    # Harmonic 3 at -6 dB, harmonic 5 at -20 dB, nothing else above the fundamental's -40 dB floor.
    levels = [1.0, 0.0, 0.5, 0.0, 0.1]
    profile = harmonic_profile(harmonic_tone(262.0, levels), [Note(60, 0.0, 1.0, 100)], SR).mean(axis=0)
    np.testing.assert_allclose(profile[[0, 2, 4]], [40.0, 34.0, 20.0], atol=0.5)
    np.testing.assert_allclose(profile[[1, 3, 5, 6, 7, 8, 9]], 0.0, atol=0.1)


def test_frames_skip_onsets_overlaps_and_nothing_else() -> None:
    cfg = HarmonicConfig()
    starts, f0 = note_frames([Note(69, 0.5, 1.0, 100)], SR, SR, cfg)
    assert len(starts) == 36 and starts[0] == 50 * cfg.hop and np.all(f0 == 440.0)  # docstring example
    # Two overlapping notes: no frame that holds both counts; frames after the first note ended do.
    notes = [Note(60, 0.0, 0.6, 100), Note(64, 0.4, 1.0, 100)]
    starts, f0 = note_frames(notes, SR, SR, cfg)
    for a, f in zip(starts, f0, strict=True):
        t0, t1 = a / SR, (a + cfg.n_fft) / SR
        assert not (t0 < 0.6 and t1 > 0.4)  # never straddles the overlap
        assert (f == pytest.approx(261.63, abs=0.01)) == (t1 <= 0.6)
    assert {round(f) for f in f0} == {262, 330}


def test_high_notes_skip_harmonics_past_11_khz_in_both_signals() -> None:
    notes = [Note(93, 0.0, 1.0, 100)]  # 1760 Hz: harmonics 6..10 pass 11 kHz
    profile = harmonic_profile(sawtooth(1760.0), notes, SR)
    assert np.all(np.isfinite(profile[:, :5])) and np.all(np.isnan(profile[:, 5:]))
    assert np.isfinite(harmonic_distance(harmonic_tone(1760.0, [1.0]), sawtooth(1760.0), notes, SR))


def test_no_note_frames_is_nan() -> None:
    short = [Note(60, 0.0, 0.05, 100)]  # shorter than the onset guard plus one frame
    assert len(harmonic_profile(sawtooth(262.0), short, SR)) == 0
    assert np.isnan(harmonic_distance(sawtooth(262.0), sawtooth(262.0), short, SR))


def test_a_comb_of_noise_bands_is_not_a_harmonic_series() -> None:
    # White noise shaped into teeth about 60 Hz wide at k*f0 (what a per-band gain can make of noise)
    # peaks at every harmonic like the sawtooth, but is no harmonic series; the skirt floor says so.
    f0, n = 220.0, SR
    freqs = np.fft.rfftfreq(n, 1.0 / SR)
    teeth = sum(np.exp(-0.5 * ((freqs - k * f0) / 25.0) ** 2) / k for k in range(1, 40))
    comb = np.fft.irfft(np.fft.rfft(np.random.default_rng(0).standard_normal(n)) * teeth, n)
    saw = sawtooth(f0)
    assert harmonic_distance(comb, saw, NOTE_A3, SR) > 8.0  # measured 9.4 (valleys only: 3.0)
    valleys_only = HarmonicConfig(skirt_bins=None)
    assert harmonic_distance(comb, saw, NOTE_A3, SR, valleys_only) < harmonic_distance(comb, saw, NOTE_A3, SR) - 5.0
