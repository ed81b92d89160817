"""Sources no SoundFont in the dataset has, rendered from a clip's notes (numpy only).

Each function takes the notes of a dataset clip (``diffusion.data.Note`` or anything with ``pitch``,
``start``, ``end``, ``velocity``), the clip's length in samples and the sample rate (the dataset's,
``RenderConfig.sample_rate`` = 24 kHz), and returns float32 mono audio with the same timing as the
clip's renderings, so the dataset's true target renderings line up with it sample for sample.

- ``sine_vibrato``: a whistle. A sine with 5.5 Hz vibrato of +-30 cents (faded in over 0.2 s) and
  breath noise 30 dB under the tone (band-passed white noise, 1-6 kHz, on the note's envelope).
- ``pluck``: a plucked string (Karplus & Strong 1983, with the extensions of Jaffe & Smith 1983:
  a decay-stretched loop average, and a fractional delay, here 3rd-order Lagrange, that tunes the
  pitch to a cent), decaying (T60 1.5 s), damped at the note's end.
- ``voice``: a sung /a/. A harmonic glottal source (a band-limited sawtooth, -6 dB per octave, with
  5.5 Hz vibrato of +-40 cents) through five formant resonators (soprano /a/: 800, 1150, 2900, 3900,
  4950 Hz; bandwidths 80-140 Hz; levels 0, -6, -32, -20, -50 dB). The resonators are applied per
  harmonic (each harmonic's amplitude is the filter's magnitude at its instantaneous frequency),
  which for a harmonic source equals filtering it, and stays vectorised.
- ``square``: a synth lead. A band-limited square wave (odd harmonics 1/k up to 0.45 x the rate).

Every note is phase-continuous from its onset to the end of its release (the phase is the running
integral of its instantaneous frequency), has a raised-cosine attack (10 ms; 2 ms for the pluck)
and a raised-cosine release starting at its end (40 ms; 20 ms for the pluck), cut short so it is
over by the clip's end: no note starts or stops with a jump. Overlapping notes add. Level follows
velocity (``0.25 * velocity / 127`` per note), and a clip whose peak would pass 0.9 is scaled down.
Random parts (vibrato phase, breath noise, pluck excitation) come from ``seed`` and the note's index,
so a render is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

PEAK_LIMIT = 0.9
MAX_HARMONIC_FRACTION = 0.45  # additive partials stay under 0.45 x the sample rate (no aliasing)
VOWEL_A = ((800.0, 80.0, 0.0), (1150.0, 90.0, -6.0), (2900.0, 120.0, -32.0), (3900.0, 130.0, -20.0),
           (4950.0, 140.0, -50.0))  # (centre Hz, bandwidth Hz, level dB): soprano /a/


class SynthNote(Protocol):
    """A note as the dataset stores it (diffusion.data.Note): MIDI pitch, seconds, MIDI velocity."""

    pitch: int
    start: float
    end: float
    velocity: int


def midi_hz(pitch: float) -> float:
    return float(440.0 * 2.0 ** ((pitch - 69.0) / 12.0))


def ramp(n: int) -> np.ndarray:
    """Raised-cosine rise over n samples: 0 at the first sample, approaching 1 (n = 0 -> empty)."""
    return 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / max(n, 1))


def envelope(on: int, off: int, total: int, attack: int, release: int) -> np.ndarray:
    """Gain from sample ``on`` of a note released at sample ``off``, in a clip of ``total`` samples.

    A raised-cosine rise over ``attack`` samples, 1 until ``off``, a raised-cosine fall over
    ``release`` samples; the array ends where the fall does. A release that would pass the clip's
    end starts earlier, so the last sample of the clip is silent.

    Worked example (attack 240, release 960, i.e. 10 / 40 ms at 24 kHz): a note from sample 1000 to
    5000 in a clip of 10,000 samples rises over [1000, 1240), holds at 1 and falls over [5000, 5960);
    in a clip of 5,500 samples it falls over [4540, 5500) instead.
    """
    length = total - on
    r = min(release, length // 2)
    hold = min(max(off - on, 1), length - r)
    a = min(attack, hold)
    env = np.ones(hold + r)
    env[:a] = ramp(a)
    env[hold:] = ramp(r)[::-1] * env[hold - 1]  # a note shorter than its attack falls from where it got
    return env


def vibrato_phase(f0: float, n: int, sr: int, depth_cents: float, rate: float, phase: float,
                  fade: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(instantaneous frequency Hz, running phase in radians) of n samples of a vibrato tone.

    The depth fades in over ``fade`` seconds; the phase starts at 0 and is continuous throughout.
    """
    t = np.arange(n) / sr
    depth = depth_cents * np.minimum(t / fade, 1.0) if fade > 0 else np.full(n, depth_cents)
    freq = f0 * 2.0 ** (depth * np.sin(2.0 * np.pi * rate * t + phase) / 1200.0)
    phi = 2.0 * np.pi * np.concatenate([[0.0], np.cumsum(freq[:-1])]) / sr
    return freq, phi


def _render(notes: Sequence[SynthNote], num_samples: int, sr: int, seed: int, attack_s: float, release_s: float,
            voice: Callable[[SynthNote, int, int, np.random.Generator], np.ndarray]) -> np.ndarray:
    """Lay out ``voice(note, n, sr, rng)`` (n samples from the note's onset) under each note's envelope."""
    out = np.zeros(num_samples)
    attack, release = int(round(attack_s * sr)), int(round(release_s * sr))
    for index, note in enumerate(notes):
        on = int(round(note.start * sr))
        off = int(round(note.end * sr))
        if on >= num_samples or off <= on:
            continue
        env = envelope(on, min(off, num_samples), num_samples, attack, release)
        rng = np.random.default_rng([seed, index])
        tone = voice(note, len(env), sr, rng)
        out[on : on + len(env)] += (0.25 * note.velocity / 127.0) * env * tone
    peak = float(np.max(np.abs(out))) if num_samples else 0.0
    if peak > PEAK_LIMIT:
        out *= PEAK_LIMIT / peak
    return out.astype(np.float32)


def _breath(n: int, sr: int, rng: np.random.Generator, lo: float = 1000.0, hi: float = 6000.0) -> np.ndarray:
    """Unit-RMS white noise band-passed to [lo, hi] Hz (smooth edges) by an FFT mask."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    mask = np.exp(-0.5 * (np.log(np.maximum(f, 1.0) / np.sqrt(lo * hi)) / (0.5 * np.log(hi / lo))) ** 4)
    noise = np.fft.irfft(spec * mask, n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def _additive(phi: np.ndarray, freq: np.ndarray, sr: int, amp: Callable[[np.ndarray, np.ndarray], np.ndarray],
              odd_only: bool = False) -> np.ndarray:
    """Sum of harmonics ``amp(k, k*freq) * sin(k*phi)`` below MAX_HARMONIC_FRACTION * sr, in chunks of 16."""
    top = int(MAX_HARMONIC_FRACTION * sr / float(np.max(freq)))
    ks = np.arange(1, top + 1, 2 if odd_only else 1)
    out = np.zeros(len(phi))
    for i in range(0, len(ks), 16):
        k = ks[i : i + 16, None].astype(np.float64)
        out += np.sum(amp(k, k * freq[None]) * np.sin(k * phi[None]), axis=0)
    return out


def sine_vibrato(notes: Sequence[SynthNote], num_samples: int, sr: int, seed: int = 0,
                 breath_db: float | None = -30.0) -> np.ndarray:
    """Whistle: a sine with 5.5 Hz, +-30 cent vibrato and breath noise ``breath_db`` under it (None: none)."""

    def tone(note: SynthNote, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
        _, phi = vibrato_phase(midi_hz(note.pitch), n, sr, 30.0, 5.5, rng.uniform(0, 2 * np.pi))
        if breath_db is None:
            return np.sin(phi)
        return np.sin(phi) + _breath(n, sr, rng) * (10 ** (breath_db / 20) / np.sqrt(2))  # sine RMS 1/sqrt(2)

    return _render(notes, num_samples, sr, seed, 0.01, 0.04, tone)


def square(notes: Sequence[SynthNote], num_samples: int, sr: int, seed: int = 0) -> np.ndarray:
    """Synth lead: a band-limited square (odd harmonics, amplitude 4/(pi k)), no vibrato."""

    def tone(note: SynthNote, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
        freq = np.full(n, midi_hz(note.pitch))
        phi = 2.0 * np.pi * freq[0] * np.arange(n) / sr
        return 0.7 * _additive(phi, freq, sr, lambda k, f: 4.0 / (np.pi * k), odd_only=True)

    return _render(notes, num_samples, sr, seed, 0.01, 0.04, tone)


def formant_gain(f: np.ndarray, formants: Sequence[tuple[float, float, float]] = VOWEL_A) -> np.ndarray:
    """Magnitude of parallel resonators at frequencies ``f``: sum of level / sqrt(1 + (2 (f - F) / B)^2)."""
    out = np.full(np.shape(f), 1e-3)
    for centre, bandwidth, level_db in formants:
        out = out + 10 ** (level_db / 20) / np.sqrt(1.0 + (2.0 * (f - centre) / bandwidth) ** 2)
    return out


def voice(notes: Sequence[SynthNote], num_samples: int, sr: int, seed: int = 0) -> np.ndarray:
    """Sung /a/: a band-limited sawtooth source (1/k) with 5.5 Hz, +-40 cent vibrato, through 5 formants."""

    def tone(note: SynthNote, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
        freq, phi = vibrato_phase(midi_hz(note.pitch), n, sr, 40.0, 5.5, rng.uniform(0, 2 * np.pi), fade=0.3)
        wave = _additive(phi, freq, sr, lambda k, f: formant_gain(f) / k)
        return wave / (np.max(np.abs(wave)) + 1e-12)

    return _render(notes, num_samples, sr, seed, 0.01, 0.04, tone)


def lagrange_taps(delay: float, order: int = 3) -> np.ndarray:
    """FIR fractional delay by Lagrange interpolation (Laakso et al. 1996, "Splitting the unit delay"):
    taps h[k] = prod_{m != k} (delay - m) / (k - m), k = 0..order; nearly flat in magnitude for
    (order - 1) / 2 <= delay <= (order + 1) / 2, unlike linear interpolation, which dulls a string."""
    k = np.arange(order + 1)
    return np.array([np.prod([(delay - m) / (i - m) for m in k if m != i]) for i in k])


def karplus_strong(f0: float, n: int, sr: int, rng: np.random.Generator, t60: float = 1.5,
                   stretch: float = 0.1, brightness: int = 2) -> np.ndarray:
    """n samples of a plucked string at f0: y[i] = g * (h * y)[i - M].

    The loop filter h (Jaffe & Smith 1983) is a decay-stretched average ``[1 - S, S]`` (S = 0.5 is the
    original Karplus-Strong; smaller S lets the upper partials ring longer) times a 3rd-order Lagrange
    fractional delay, so the loop (M samples + S + the interpolator's 1..2) is tuned to sr / f0 within a
    cent. h reaches at least M samples back, so a whole block of M samples is computed at once from
    the samples before it. g sets the fundamental's T60. The excitation is a zero-mean noise burst,
    smoothed by a circular ``brightness``-point moving average (a softer pluck).
    """
    period = sr / f0
    delay = int(np.floor(period - stretch - 1.0))
    taps = np.convolve([1.0 - stretch, stretch], lagrange_taps(period - stretch - delay))  # delays M .. M+4
    reach = len(taps) - 1
    g = 10 ** (-3.0 / (t60 * f0))  # per trip round the loop: -60 dB after t60 seconds
    burst = rng.uniform(-1.0, 1.0, delay + reach)
    # Circular smoothing: the loop's first pass wraps from the burst's end back to its start.
    burst = np.convolve(np.concatenate([burst[1 - brightness :], burst]), np.ones(brightness) / brightness, "valid")
    y = np.zeros(n + delay + reach)
    y[: delay + reach] = burst - burst.mean()
    i = delay + reach
    while i < len(y):
        j = min(i + delay, len(y))  # y[i:j] needs y[i-M-reach : j-M], all computed already
        y[i:j] = g * sum(t * y[i - delay - k : j - delay - k] for k, t in enumerate(taps))
        i = j
    y = y[:n]
    return y / (np.max(np.abs(y)) + 1e-12)


def pluck(notes: Sequence[SynthNote], num_samples: int, sr: int, seed: int = 0) -> np.ndarray:
    """Plucked string (Karplus-Strong), decaying with a T60 of 1.5 s, damped over 20 ms at the note's end."""

    def tone(note: SynthNote, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
        return karplus_strong(midi_hz(note.pitch), n, sr, rng)

    return _render(notes, num_samples, sr, seed, 0.002, 0.02, tone)


SOURCES: dict[str, Callable[[Sequence[SynthNote], int, int, int], np.ndarray]] = {
    "sine_vibrato": sine_vibrato, "pluck": pluck, "voice": voice, "square": square,
}
