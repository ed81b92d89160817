"""Level matching: the wet signal slowly follows the loudness of the input that made it.

Why: a style model reproduces the loudness of its training targets, not the player's. The shipped
model turned the demo's plucked melody into a violin about 7 dB quieter than the input, and a quiet
input into a louder one. A performer expects to hear their dynamics, at the level they play, so the
engine measures both signals (the dry one latency-aligned with the wet) over about a second and
scales the wet by sqrt(P_dry / P_wet), within +-``max_gain_db``, moving at most ``max_slew_db_per_s``.

The estimate is slow on purpose: within a phrase the model's own dynamics pass unchanged (a
crescendo stays a crescendo); only the average level is matched. Blocks whose input is below ``gate_db``
(a pause, a muted string, minutes of silence) are not measured: the gain holds instead of drifting
towards the noise floor, and the next phrase starts at the level the last one ended with.

Worked example (48 kHz device, a 768-sample emit, tau 1 s, slew 6 dB/s): each emit moves the power
estimates 1 - exp(-768 / 48000) = 1.6 % of the way to the current block and the gain at most
0.096 dB, so the shipped model's 7 dB shortfall is made up in a little over a second, and a
sudden 10 dB change of playing level is followed within about 2 s; the gain is ramped linearly
across each emit (no zipper noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from diffusion.errors import StylehostError


@dataclass(frozen=True)
class LevelMatchConfig:
    """How fast and how far the wet level follows the input."""

    time_constant_s: float = 1.0  # power estimate window: matches the level, keeps note dynamics
    max_gain_db: float = 12.0  # never more (or less) than this: a silent model output is not boosted to noise
    gate_db: float = -60.0  # input power below this (dBFS, RMS) holds the gain
    max_slew_db_per_s: float = 6.0  # the gain moves at most this fast (the first notes do not jump)

    def __post_init__(self) -> None:
        if self.time_constant_s <= 0 or self.max_gain_db < 0 or self.max_slew_db_per_s <= 0:
            raise StylehostError(f"need time_constant_s > 0 and max_gain_db >= 0, got {self}")


class LevelMatcher:
    """Per emitted block: ``gains(wet, dry)`` -> (n,) float32 gain ramp for the wet signal (worker only)."""

    def __init__(self, sample_rate: int, cfg: LevelMatchConfig | None = None) -> None:
        self.cfg = cfg = cfg or LevelMatchConfig()
        self.sample_rate = sample_rate
        self._gate = 10.0 ** (cfg.gate_db / 10.0)  # power
        self._max = 10.0 ** (cfg.max_gain_db / 20.0)
        self.reset()

    def reset(self) -> None:
        self._dry_power = 0.0
        self._wet_power = 0.0
        self.gain = 1.0

    @property
    def gain_db(self) -> float:
        return 20.0 * math.log10(self.gain)

    def gains(self, wet: np.ndarray, dry: np.ndarray) -> np.ndarray:
        """Update the estimates with this block (both (n, channels)) and return the wet's gain ramp.

        Both estimates start at 0 and decay alike, so their ratio needs no bias correction.
        """
        n = len(wet)
        start = self.gain
        dry_p = float(np.mean(np.square(dry, dtype=np.float64))) if dry.size else 0.0
        if dry_p <= self._gate:  # a pause: listen only while the player plays, hold the gain
            return np.full(n, start, np.float32)
        wet_p = float(np.mean(np.square(wet, dtype=np.float64))) if wet.size else 0.0
        a = 1.0 - math.exp(-n / (self.cfg.time_constant_s * self.sample_rate))
        self._dry_power += a * (dry_p - self._dry_power)
        self._wet_power += a * (wet_p - self._wet_power)
        if self._wet_power > 0.0:
            ratio = math.sqrt(self._dry_power / self._wet_power)
            target = min(self._max, max(1.0 / self._max, ratio))
            slew = 10.0 ** (self.cfg.max_slew_db_per_s * n / self.sample_rate / 20.0)
            self.gain = min(start * slew, max(start / slew, target))
        if self.gain == start:
            return np.full(n, start, np.float32)
        return (start + (self.gain - start) * np.arange(1, n + 1) / n).astype(np.float32)
