"""Synthesized sources: right length and pitch, deterministic, and no clicks at note boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from diffusion.data import Note
from diffusion.harmonics import harmonic_profile
from diffusion.synth_sources import SOURCES, envelope, karplus_strong, midi_hz

SR = 24000
ATTACK = {"sine_vibrato": 0.01, "pluck": 0.002, "voice": 0.01, "square": 0.01}
RELEASE = {"sine_vibrato": 0.04, "pluck": 0.02, "voice": 0.04, "square": 0.04}
# A melody like a dataset clip's: legato steps, a rest, a repeated note, a long held note.
MELODY = [Note(64, 0.05, 0.40, 80), Note(66, 0.40, 0.75, 90), Note(68, 0.75, 1.10, 100),
          Note(68, 1.40, 1.70, 70), Note(71, 1.90, 3.40, 110)]


def fundamental_hz(audio: np.ndarray, nominal: float) -> float:
    """Power-weighted mean frequency within +-60 cents of ``nominal`` (vibrato sidebands are symmetric)."""
    spec = np.abs(np.fft.rfft(audio * np.hanning(len(audio)), 16 * len(audio))) ** 2
    freqs = np.fft.rfftfreq(16 * len(audio), 1.0 / SR)
    near = np.abs(1200 * np.log2(np.maximum(freqs, 1.0) / nominal)) <= 60
    return float(np.sum(freqs[near] * spec[near]) / np.sum(spec[near]))


@pytest.mark.parametrize("name", list(SOURCES))
@pytest.mark.parametrize("sr", [24000, 48000])
def test_renders_the_clip_length_as_float32(name: str, sr: int) -> None:
    audio = SOURCES[name](MELODY, 4 * sr, sr, 0)
    assert audio.shape == (4 * sr,) and audio.dtype == np.float32
    assert np.all(np.isfinite(audio)) and 0.01 < np.max(np.abs(audio)) <= 0.9
    assert np.all(audio[: int(0.05 * sr)] == 0.0)  # silent before the first onset


@pytest.mark.parametrize("name", list(SOURCES))
@pytest.mark.parametrize("pitch", [57, 69, 76])
def test_steady_note_has_the_right_f0(name: str, pitch: int) -> None:
    note = Note(pitch, 0.0, 2.0, 100)
    audio = SOURCES[name]([note], 2 * SR, SR, 0)
    steady = audio[int(0.4 * SR) : int(0.4 * SR) + int(round(1.0 * SR / 5.5 * 5))]  # 5 vibrato cycles
    if name == "pluck":  # decaying: measure early, while the string still rings
        steady = audio[int(0.05 * SR) : int(0.55 * SR)]
    cents = 1200 * np.log2(fundamental_hz(steady, midi_hz(pitch)) / midi_hz(pitch))
    # 5 cents: the voice's formants weigh the upper half of its vibrato more near F1, which moves the
    # power-weighted mean (not the tone) up by ~4 cents at MIDI 76; the others are within 0.2.
    assert abs(cents) < 5.0, f"{name} at MIDI {pitch}: {cents:+.1f} cents"
    # The harmonic metric finds a clean fundamental where the note says it is.
    assert np.nanmean(harmonic_profile(audio, [note], SR)[:, 0]) > 20.0


def test_sources_have_their_harmonic_signatures() -> None:
    note = [Note(64, 0.0, 1.5, 100)]
    profile = {name: np.nanmean(harmonic_profile(make(note, int(1.5 * SR), SR, 0), note, SR), axis=0)
               for name, make in SOURCES.items()}
    assert np.all(profile["sine_vibrato"][1:] < 10.0)  # a whistle: the fundamental alone
    assert np.all(profile["square"][1::2] < 1.0) and np.all(profile["square"][0::2] > 15.0)  # odd harmonics
    assert np.all(profile["voice"][:7] > 10.0)  # every harmonic, shaped by the formants
    assert np.all(profile["pluck"][:5] > 15.0)  # a string: a series of harmonics while it rings


@pytest.mark.parametrize("name", list(SOURCES))
def test_no_clicks_at_note_boundaries(name: str) -> None:
    audio = SOURCES[name](MELODY, 4 * SR, SR, 0).astype(np.float64)
    jumps = np.abs(np.diff(audio))
    biggest = jumps.max()
    attack, release = int(ATTACK[name] * SR), int(RELEASE[name] * SR)
    for note in MELODY:
        on, off = int(round(note.start * SR)), int(round(note.end * SR))
        others = [n for n in MELODY if n is not note and n.start * SR - release < on < n.end * SR + release]
        if not others:  # isolated onset: starts from silence, and its first quarter-ramp is gentle
            assert abs(audio[on]) < 1e-3 * np.max(np.abs(audio))
            assert jumps[on - 5 : on + attack // 4].max() < 0.25 * biggest
        following = [n for n in MELODY if off <= n.start * SR < off + release + 5]
        if not following:  # isolated release: falls gently to exact silence
            tail = slice(off + release - release // 4, off + release)
            assert jumps[tail].max() < 0.25 * biggest
            assert np.all(audio[off + release : off + release + 100] == 0.0)
    if name == "sine_vibrato":  # a sine's steepest slope, plus a little for the breath noise
        assert biggest < 2.0 * 2 * np.pi * midi_hz(71) * 2 ** (30 / 1200) / SR * np.max(np.abs(audio))
    assert audio[-1] == 0.0


def test_release_is_cut_short_at_the_clip_end() -> None:
    env = envelope(1000, 5000, 10000, 240, 960)  # the docstring's worked example
    assert len(env) == 4960 and env[0] == 0.0 and env[240] == 1.0 and env[-1] < 1e-5
    short = envelope(1000, 5000, 5500, 240, 960)
    assert len(short) == 4500 and short[3539] == 1.0 and short[-1] < 1e-5
    for name, make in SOURCES.items():  # a note held to the clip's last sample still ends in silence
        audio = make([Note(69, 0.1, 1.0, 100)], SR, SR, 0)
        assert abs(audio[-1]) < 1e-4 * np.max(np.abs(audio)), name


@pytest.mark.parametrize("name", ["sine_vibrato", "pluck", "voice"])
def test_deterministic_given_the_seed(name: str) -> None:
    a, b = SOURCES[name](MELODY, 4 * SR, SR, 3), SOURCES[name](MELODY, 4 * SR, SR, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, SOURCES[name](MELODY, 4 * SR, SR, 4))


def test_karplus_strong_decays() -> None:
    y = karplus_strong(220.0, 2 * SR, SR, np.random.default_rng(0), t60=1.0)
    early, late = np.sqrt(np.mean(y[: SR // 10] ** 2)), np.sqrt(np.mean(y[SR : SR + SR // 10] ** 2))
    assert 20 * np.log10(late / early) < -40.0  # T60 of the fundamental 1 s; higher partials faster
