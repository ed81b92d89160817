"""The demo check's measures: the demo's score fits the clip it describes, and ``hold`` tells a series that
dies away (a pluck) from one that holds (a bowed note)."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from benchmarks.demo_check import DEMO, SR, demo_notes, hold_db
from diffusion.data import Note


def _saw(notes: list[Note], seconds: float, decay_per_s: float) -> np.ndarray:
    out = np.zeros(int(seconds * SR))
    for n in notes:
        t = np.arange(int((n.end - n.start) * SR)) / SR
        f0 = 440.0 * 2 ** ((n.pitch - 69) / 12)
        tone = sum(np.sin(2 * np.pi * k * f0 * t) / k * np.exp(-decay_per_s * k * t) for k in range(1, 11))
        a = int(n.start * SR)
        out[a : a + len(tone)] += tone
    return out + 1e-5 * np.random.default_rng(0).standard_normal(len(out))


def test_hold_tells_a_decaying_series_from_a_held_one() -> None:
    notes = [Note(57, 0.1, 1.1, 90), Note(64, 1.1, 2.1, 90)]
    held, dying = hold_db(_saw(notes, 2.5, 0.0), notes), hold_db(_saw(notes, 2.5, 3.0), notes)
    assert abs(held) < 1.0 and dying < -5.0


def test_the_demo_score_fits_the_demo_clip() -> None:
    notes = demo_notes()
    info = sf.info(str(DEMO))
    assert len(notes) == 18 and notes[0].start == 0.25 and notes[-1].end < info.duration
    assert all(a.end == b.start for a, b in zip(notes, notes[1:], strict=False))  # legato: one note at a time
    audio, rate = sf.read(str(DEMO), dtype="float32")
    onset = int(notes[0].start * rate)
    assert np.abs(audio[: onset - 100]).max() < 0.01 < np.abs(audio[onset : onset + rate // 10]).max()


def test_a_synthesized_source_plays_the_demo_score(tmp_path) -> None:
    from benchmarks.demo_check import synth_source
    from diffusion.harmonics import harmonic_profile

    notes = demo_notes()
    path = tmp_path / "whistle.wav"
    audio = synth_source("sine_vibrato", notes, path)
    back, rate = sf.read(str(path), dtype="float32")
    assert rate == SR and np.array_equal(back, audio)
    # A sine: its fundamental stands far above the floor on the score's note frames, its upper harmonics do not.
    prominence = harmonic_profile(audio, notes, SR)
    with np.errstate(all="ignore"):
        per_harmonic = np.nanmean(prominence, axis=0)
    assert per_harmonic[0] > 20.0 and per_harmonic[0] - np.nanmax(per_harmonic[2:]) > 15.0
