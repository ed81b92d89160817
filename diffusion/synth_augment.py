"""Source-side augmentation with synthesized voices: sources no SoundFont has, for training (numpy only).

Why (issue 15): the denoiser and the stage learned only from two SoundFonts' instruments, so on a whistle,
a synth lead or a voice they meet inputs unlike anything they saw. Here a share ``p_synth`` of training
examples replaces the source rendering with a *random* synthesized voice playing the clip's own notes
(the dataset manifest stores them), while the target stays the clip's true rendering of those notes.

The voices are drawn from a continuous family, not from the fixed generators the evaluation uses
(``diffusion/synth_sources.py``: one whistle, one Karplus-Strong pluck, one /a/ vowel, one square): an
additive harmonic series with a random spectral tilt (a near-sine to a bright sawtooth), optionally odd
harmonics only (clarinet- and square-like) or a detuned second oscillator, through 0-4 random formant
resonances, with random vibrato, a sustained or decaying (struck, plucked) envelope whose upper partials
die faster, a random attack, and band-limited breath noise on the note's envelope. So the evaluation's
sources stay unseen instances, and the model has to generalise across the family.

Timing follows ``synth_sources``: notes are phase-continuous, under raised-cosine attack and release,
level from velocity; ``render_voice`` renders any window of a clip (notes overlapping it, times shifted)
so a training crop with its pre-roll costs only its own samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from diffusion.synth_sources import MAX_HARMONIC_FRACTION, envelope, midi_hz

Note4 = tuple[int, float, float, int]  # (MIDI pitch, start s, end s, velocity), as the manifest stores them


@dataclass(frozen=True)
class SynthAugmentConfig:
    """How often and how widely; the ranges are uniform unless said otherwise."""

    p_synth: float = 0.0  # share of examples whose source is a synthesized voice (0: off)
    # "replace": that share of a batch's sources become synthesized voices; "add": the batch keeps all its
    # SoundFont examples and round(p_synth * batch_size) synthesized ones join it, so the SoundFont gradient
    # is the one the model was trained with (a fine-tune that replaced 20% cost 0.17-0.22 dB there).
    mode: str = "replace"
    tilt: tuple[float, float] = (0.4, 3.5)  # partial k ~ k**-tilt
    p_pure: float = 0.2  # a (near-)pure sine: a whistle, an ocarina
    p_odd: float = 0.2  # odd partials only
    p_detune: float = 0.15  # a second oscillator a few cents off (a synth pad)
    formants: tuple[int, int] = (0, 4)  # number of resonances
    formant_db: tuple[float, float] = (3.0, 20.0)  # their peak gain
    vibrato_cents: tuple[float, float] = (0.0, 60.0)
    vibrato_hz: tuple[float, float] = (4.0, 7.0)
    p_decay: float = 0.3  # a struck or plucked envelope instead of a sustained one
    t60: tuple[float, float] = (0.3, 3.0)  # decay time of the fundamental, seconds
    attack_ms: tuple[float, float] = (2.0, 80.0)
    breath_db: tuple[float, float] = (-60.0, -15.0)  # noise under the tone, relative to it
    max_partials: int = 80

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_synth <= 1.0:
            raise ValueError(f"p_synth must be in [0, 1], got {self.p_synth}")
        if self.mode not in ("replace", "add"):
            raise ValueError(f"synth mode must be 'replace' or 'add', got {self.mode!r}")


@dataclass(frozen=True)
class Voice:
    """One drawn voice: every random choice of a render, so one clip window is one instrument."""

    tilt: float
    odd: bool
    detune_cents: float
    formants: tuple[tuple[float, float, float], ...]  # (centre Hz, bandwidth Hz, gain dB)
    vibrato_cents: float
    vibrato_hz: float
    t60: float  # 0: sustained
    attack_s: float
    breath: float  # linear noise level relative to the tone


def draw_voice(rng: np.random.Generator, cfg: SynthAugmentConfig) -> Voice:
    pure = rng.random() < cfg.p_pure
    count = int(rng.integers(cfg.formants[0], cfg.formants[1] + 1))
    formants = tuple((math.exp(rng.uniform(math.log(300.0), math.log(5000.0))), float(rng.uniform(60.0, 400.0)),
                      float(rng.uniform(*cfg.formant_db))) for _ in range(count))
    return Voice(
        tilt=40.0 if pure else float(rng.uniform(*cfg.tilt)),
        odd=bool(rng.random() < cfg.p_odd),
        detune_cents=float(rng.uniform(4.0, 15.0)) if rng.random() < cfg.p_detune else 0.0,
        formants=() if pure else formants,
        vibrato_cents=float(rng.uniform(*cfg.vibrato_cents)),
        vibrato_hz=float(rng.uniform(*cfg.vibrato_hz)),
        t60=float(rng.uniform(*cfg.t60)) if rng.random() < cfg.p_decay else 0.0,
        attack_s=float(rng.uniform(*cfg.attack_ms)) / 1000.0,
        breath=10.0 ** (float(rng.uniform(*cfg.breath_db)) / 20.0),
    )


def _formant_gain(freq: np.ndarray, formants: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    """Linear gain at ``freq``: 1 plus a resonance bump per formant (a parallel formant bank)."""
    gain = np.ones_like(freq)
    for centre, width, db in formants:
        gain += (10.0 ** (db / 20.0) - 1.0) / (1.0 + ((freq - centre) / (0.5 * width)) ** 2)
    return gain


def _tone(f0: float, n: int, lo: int, hi: int, sr: int, voice: Voice, rng: np.random.Generator) -> np.ndarray:
    """Samples [lo, hi) of an n-sample note from its onset, at about unit RMS (before the envelope).

    The pitch and phase run from the onset (cheap), the partials only over [lo, hi) (the cost).
    """
    t = np.arange(n) / sr
    depth = voice.vibrato_cents * np.minimum(t / 0.25, 1.0)
    freq = f0 * 2.0 ** (depth * np.sin(2.0 * np.pi * voice.vibrato_hz * t + rng.uniform(0, 2 * np.pi)) / 1200.0)
    phi = (2.0 * np.pi * np.concatenate([[0.0], np.cumsum(freq[:-1])]) / sr)[lo:hi]
    freq, t = freq[lo:hi], t[lo:hi]
    top = min(int(MAX_HARMONIC_FRACTION * sr / float(np.max(freq))), 80)
    ks = np.arange(1, max(top, 1) + 1, 2 if voice.odd else 1, dtype=np.float64)
    amp0 = ks ** -voice.tilt
    amp0 /= math.sqrt(float(np.sum((amp0 * _formant_gain(ks * f0, voice.formants)) ** 2)) / 2.0)
    out = np.zeros(hi - lo)
    oscillators = [(1.0, 0.0)] if voice.detune_cents == 0 else [(0.7, 0.0), (0.7, voice.detune_cents)]
    for level, cents in oscillators:
        shift = 2.0 ** (cents / 1200.0)
        for i in range(0, len(ks), 16):
            k = ks[i : i + 16, None]
            a = amp0[i : i + 16, None] * _formant_gain(k * freq[None] * shift, voice.formants)
            if voice.t60 > 0:  # partial k decays (1 + 0.15 (k - 1)) times faster than the fundamental
                a = a * np.exp(-6.9078 * t[None] * (1.0 + 0.15 * (k - 1.0)) / voice.t60)
            out += level * np.sum(a * np.sin(k * phi[None] * shift), axis=0)
    if voice.breath > 0 and hi > lo:
        spec = np.fft.rfft(rng.standard_normal(hi - lo))
        f = np.fft.rfftfreq(hi - lo, 1.0 / sr)
        spec *= np.exp(-0.5 * (np.log(np.maximum(f, 1.0) / 2500.0) / 0.9) ** 2)
        noise = np.fft.irfft(spec, hi - lo)
        decay = np.exp(-6.9078 * t / voice.t60) if voice.t60 > 0 else 1.0
        out += voice.breath * decay * noise / (float(np.sqrt(np.mean(noise**2))) + 1e-12)
    return out


def render_voice(notes: Sequence[Note4], start: int, num_samples: int, sr: int, voice: Voice,
                 seed: int) -> np.ndarray:
    """Samples [start, start + num_samples) of the clip's notes played by ``voice`` (float32).

    ``start`` may be negative (a pre-roll before the clip): the clip is silent there, as the dataset's
    renderings are. A note is rendered from its own onset, so a window that starts mid-note hears the
    note's true phase of its envelope (a decaying note has already decayed). Each note's random parts
    come from (seed, note index): any window of a clip agrees with the whole render (the breath noise
    aside, which is drawn per window).
    """
    out = np.zeros(num_samples)
    release = int(0.04 * sr)
    end = start + num_samples
    for index, (pitch, on_s, off_s, velocity) in enumerate(notes):
        on, off = int(round(on_s * sr)), int(round(off_s * sr))
        if off <= on or on >= end or off + release <= start:
            continue
        env = envelope(0, off - on, off - on + release, int(voice.attack_s * sr), release)  # window-independent
        lo, hi = max(start, on), min(end, on + len(env))
        if hi > lo:
            rng = np.random.default_rng([seed, index])
            tone = _tone(midi_hz(pitch), len(env), lo - on, hi - on, sr, voice, rng)
            out[lo - start : hi - start] += tone * env[lo - on : hi - on] * (0.25 * velocity / 127.0)
    peak = float(np.max(np.abs(out))) if num_samples else 0.0
    if peak > 0.9:
        out *= 0.9 / peak
    return out.astype(np.float32)
