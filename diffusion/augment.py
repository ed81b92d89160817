"""Source-side augmentation: live input is not a clean SoundFont rendering, so the source is roughened.

Only the source is augmented; the target stays the clean fluidr3 rendering, so the model learns to
ignore level, colouration, hiss and small rooms. numpy/scipy only: it runs in the DataLoader worker.
Every transform needs signal before the crop (filters and reverb have memory), so callers pass a
pre-roll of ``PREROLL_SECONDS`` before the crop and drop it afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

PREROLL_SECONDS = 0.25  # longest impulse response below, so the crop sees a fully built-up reverb


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges; the defaults are what the teacher trains with."""

    gain_db: float = 12.0  # uniform in [-gain_db, +gain_db]
    p_eq: float = 0.7
    eq_db: float = 9.0
    p_shelf: float = 0.5
    shelf_db: float = 6.0
    p_noise: float = 0.5
    noise_dbfs: tuple[float, float] = (-80.0, -50.0)
    p_reverb: float = 0.4
    rt60: tuple[float, float] = (0.05, 0.4)
    wet: tuple[float, float] = (0.05, 0.4)


def _peaking(f0: float, gain_db: float, q: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ audio-EQ-cookbook peaking biquad."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * f0 / sr
    alpha = math.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * math.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * math.cos(w0), 1 - alpha / a])
    return b / den[0], den / den[0]


def _shelf(f0: float, gain_db: float, sr: int, high: bool) -> tuple[np.ndarray, np.ndarray]:
    """RBJ cookbook low/high shelf (slope 1)."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * f0 / sr
    cw, alpha = math.cos(w0), math.sin(w0) / 2 * math.sqrt(2)
    sq = 2 * math.sqrt(a) * alpha
    sign = -1 if high else 1
    b = np.array([a * ((a + 1) - sign * (a - 1) * cw + sq), 2 * sign * a * ((a - 1) - sign * (a + 1) * cw),
                  a * ((a + 1) - sign * (a - 1) * cw - sq)])
    den = np.array([(a + 1) + sign * (a - 1) * cw + sq, -2 * sign * ((a - 1) + sign * (a + 1) * cw),
                    (a + 1) + sign * (a - 1) * cw - sq])
    return b / den[0], den / den[0]


def synthetic_rir(rng: np.random.Generator, sr: int, rt60: float) -> np.ndarray:
    """A short room: unit direct path plus exponentially decaying noise (-60 dB at rt60), low-passed."""
    n = int(min(rt60, PREROLL_SECONDS) * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    tail = signal.lfilter([0.5, 0.5], [1.0], tail)  # gentle air absorption
    tail[: int(0.002 * sr)] = 0.0  # 2 ms pre-delay before the first reflections
    tail /= np.sqrt(np.sum(tail**2)) + 1e-9
    return tail


def augment_source(x: np.ndarray, rng: np.random.Generator, sr: int, cfg: AugmentConfig) -> np.ndarray:
    """Randomly roughen a float mono signal (pre-roll included); returns float32 of the same length."""
    y = x.astype(np.float64)
    if rng.random() < cfg.p_reverb:
        rir = synthetic_rir(rng, sr, rng.uniform(*cfg.rt60))
        wet = signal.fftconvolve(y, rir)[: len(y)]
        y = y + rng.uniform(*cfg.wet) * wet * (np.sqrt(np.mean(y**2)) / (np.sqrt(np.mean(wet**2)) + 1e-9))
    if rng.random() < cfg.p_eq:
        for _ in range(rng.integers(1, 3)):
            f0 = math.exp(rng.uniform(math.log(80.0), math.log(0.4 * sr)))
            b, a = _peaking(f0, rng.uniform(-cfg.eq_db, cfg.eq_db), rng.uniform(0.5, 3.0), sr)
            y = signal.lfilter(b, a, y)
    if rng.random() < cfg.p_shelf:
        high = bool(rng.random() < 0.5)
        f0 = rng.uniform(3000.0, 8000.0) if high else rng.uniform(80.0, 400.0)
        b, a = _shelf(f0, rng.uniform(-cfg.shelf_db, cfg.shelf_db), sr, high)
        y = signal.lfilter(b, a, y)
    y = y * 10 ** (rng.uniform(-cfg.gain_db, cfg.gain_db) / 20)
    if rng.random() < cfg.p_noise:
        y = y + rng.standard_normal(len(y)) * 10 ** (rng.uniform(*cfg.noise_dbfs) / 20)
    return y.astype(np.float32)
