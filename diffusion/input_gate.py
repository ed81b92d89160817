"""What the denoiser hears, chosen per call: the input, or its harmonic excitation (issue 15; numpy only).

Why: the same denoiser hearing the input keeps a real instrument's attack, noise and dynamics (best on
SoundFont-like sources), and hearing the input's harmonic excitation (the same 1/k series at the input's
pitch, diffusion/excitation.py) makes an instrument it never met, a sine, a square lead, a synth voice,
sound like the target (docs/timbre.md: square 11.9 -> 4.5 dB harmonic distance, SoundFont log-mel
6.20 -> 6.88). Neither input wins on both, so a small domain gate decides from the input's own log-mel
window how far it is from the instruments the model was trained on: a logistic regression fitted with
SoundFont renders as one class and the synthesized-voice family of ``synth_augment`` as the other
(outlier exposure; ``diffusion/gate_fit.py``), on the training split only.

Each call the gate's raw weight ``p`` (0: the input, 1: the excitation) is smoothed by a one-pole
filter over calls, ``g += (p - g) * alpha`` with ``alpha = 1 - exp(-stride / tau)``, so a switch is a
glide of about ``tau`` seconds, never a jump; the denoiser hears ``(1 - g) * input + g * excitation``
(log-mel, before normalisation; the normalisation is affine, so after it too). The offline reference
(``diffusion/stream.py``) and the live processor call the same ``raw_weight`` on the same window, and
the same ``smooth`` step, so the two agree.

Features of a (n_mels, T) natural-log mel window, over its active frames (within ``active_db`` of its
loudest frame): the mean spectral shape relative to each frame's peak (floored ``shape_db`` below it),
and the mean absolute frame-to-frame change per band (steady synthesized tones change little; bows,
breath and hammers move). A silent window has weight 0, the input as today, and the weight fades in with the
window's level over 2 nepers (8.7 dB) above that, so near-silence has no hard switch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diffusion.errors import StylehostError

GATE_FEATURES = "shape-flux-v1"  # the feature definition below; a manifest with another is refused
# A window's loudest band (natural log of mel power) under SILENT is silence (weight 0); the weight fades in up
# to FULL, so the gate has no threshold that a rounding difference between two frontends could flip.
SILENT, FULL = -11.0, -9.0
DB_PER_NEPER = 10.0 / math.log(10.0)  # log-mel values are natural logs of power: 1 neper = 4.34 dB


@dataclass(frozen=True)
class GateConfig:
    """The fitted gate: standardisation, logistic weights, and its glide (saved in a bundle manifest)."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    tau_s: float = 0.15  # glide time constant between the two inputs
    active_db: float = 40.0  # frames this far under the window's loudest one are ignored
    shape_db: float = 60.0  # a frame's bands are floored this far under its peak
    features: str = GATE_FEATURES
    fit: dict[str, Any] = field(default_factory=dict)  # how it was fitted (command, seed, commit, accuracy)

    def __post_init__(self) -> None:
        n = len(self.weights)
        if n == 0 or n % 2 or len(self.mean) != n or len(self.scale) != n:
            raise StylehostError(f"input gate: weights, mean and scale must have one even length, got "
                                 f"{len(self.weights)}, {len(self.mean)}, {len(self.scale)}")
        if self.features != GATE_FEATURES:
            raise StylehostError(f"input gate features {self.features!r} are not {GATE_FEATURES!r}: refit the gate")
        values = [*self.mean, *self.scale, *self.weights, self.bias, self.tau_s]
        if not all(math.isfinite(v) for v in values) or min(self.scale) <= 0 or self.tau_s <= 0:
            raise StylehostError("input gate: non-finite values, a scale <= 0 or tau_s <= 0")

    @property
    def n_mels(self) -> int:
        return len(self.weights) // 2

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "scale": list(self.scale), "weights": list(self.weights),
                "bias": self.bias, "tau_s": self.tau_s, "active_db": self.active_db, "shape_db": self.shape_db,
                "features": self.features, "fit": dict(self.fit)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GateConfig:
        known = {"mean", "scale", "weights", "bias", "tau_s", "active_db", "shape_db", "features", "fit"}
        unknown = set(d) - known
        if unknown:
            raise StylehostError(f"input gate: unknown keys {sorted(unknown)}; valid: {sorted(known)}")
        try:
            return cls(mean=tuple(float(v) for v in d["mean"]), scale=tuple(float(v) for v in d["scale"]),
                       weights=tuple(float(v) for v in d["weights"]), bias=float(d["bias"]),
                       tau_s=float(d.get("tau_s", 0.15)), active_db=float(d.get("active_db", 40.0)),
                       shape_db=float(d.get("shape_db", 60.0)), features=str(d.get("features", "")),
                       fit=dict(d.get("fit", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise StylehostError(f"input gate: malformed section ({exc})") from exc


def window_features(logmel: np.ndarray, active_db: float = 40.0, shape_db: float = 60.0) -> np.ndarray | None:
    """(n_mels, T) natural-log mel window -> (2 n_mels,) features, or None when no frame is active.

    Worked example: a window whose frames peak at -2, -2.5 and -14 nepers, active_db 40 (9.2 nepers):
    the third frame is 12 nepers under the loudest and is ignored; the shape is the mean of the first
    two frames minus their own peaks, the flux the mean |difference| of that one adjacent active pair
    (no pair: zeros)."""
    x = np.asarray(logmel, dtype=np.float32)
    peak = x.max(axis=0)  # (T,)
    active = peak >= peak.max() - np.float32(active_db / DB_PER_NEPER)
    if x.shape[1] == 0 or peak.max() <= np.float32(SILENT):  # at the log floor (-11.5): silence
        return None
    rel = np.maximum(x - peak[None], np.float32(-shape_db / DB_PER_NEPER))
    shape = rel[:, active].mean(axis=1)
    pairs = active[1:] & active[:-1]
    flux = np.abs(np.diff(x, axis=1))[:, pairs].mean(axis=1) if np.any(pairs) else np.zeros(len(x), np.float32)
    return np.concatenate([shape, flux]).astype(np.float32)


class InputGate:
    """The gate as the processor and the offline reference run it: ``raw_weight`` per window, ``smooth``
    over calls. ``stride_s`` is the time between calls (emit frames x hop / sample rate)."""

    def __init__(self, cfg: GateConfig, stride_s: float) -> None:
        if stride_s <= 0:
            raise StylehostError(f"input gate: stride must be > 0 s, got {stride_s}")
        self.cfg = cfg
        self.alpha = float(1.0 - math.exp(-stride_s / cfg.tau_s))
        self._mean = np.asarray(cfg.mean, np.float32)
        self._scale = np.asarray(cfg.scale, np.float32)
        self._w = np.asarray(cfg.weights, np.float32)
        self.value = 0.0  # the smoothed weight: starts on the input, as a bundle without a gate plays

    def raw_weight(self, logmel: np.ndarray) -> float:
        """P(the window is unlike the training instruments) for one (n_mels, T) natural-log window."""
        if logmel.shape[0] != self.cfg.n_mels:
            raise StylehostError(f"input gate fitted on {self.cfg.n_mels} mel bands, got {logmel.shape[0]}")
        return self.weight_of(window_features(logmel, self.cfg.active_db, self.cfg.shape_db), float(logmel.max()))

    def weight_of(self, features: np.ndarray | None, peak: float) -> float:
        """``raw_weight`` from a window's ``window_features`` and its loudest value: the gate fit scores
        several gates on features it computes once."""
        if features is None:
            return 0.0
        z = float(np.dot((features - self._mean) / self._scale, self._w)) + self.cfg.bias
        fade = min(1.0, (peak - SILENT) / (FULL - SILENT))
        return fade / (1.0 + math.exp(-min(max(z, -60.0), 60.0)))

    def smooth(self, raw: float) -> float:
        """One call's glide step; returns the weight of the excitation this call hears."""
        self.value += (raw - self.value) * self.alpha
        return self.value

    def reset(self) -> None:
        self.value = 0.0

    def weights(self, windows: np.ndarray) -> np.ndarray:
        """Offline: (W, n_mels, T) windows in call order -> (W,) smoothed weights, from a reset gate."""
        self.reset()
        return np.array([self.smooth(self.raw_weight(w)) for w in windows], dtype=np.float32)
