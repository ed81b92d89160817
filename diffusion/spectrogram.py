"""SpectrogramConfig, the analysis/synthesis windows and the mel filterbank, in numpy only.

The torch-free half of the features: the live engine, the bundle reader and the panel need the
config and the windows but must not load torch (a large heap for the garbage collector to walk and
a slow start; see docs/live.md). diffusion/features.py builds the torch transform on top of this.

Framing is streaming-friendly: no centring or padding, frame ``j`` covers samples
``[j*hop, j*hop + n_fft)``, so a live engine can compute frame ``j`` as soon as its last sample has
arrived.

Worked example with the defaults (24 kHz, n_fft 384, hop 96): one second of audio, 24,000 samples,
gives ``1 + (24000 - 384) // 96 = 247`` frames; a window of 32 frames spans ``31*96 + 384 = 3360``
samples (140 ms).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffusion.errors import StylehostError


@dataclass(frozen=True)
class SpectrogramConfig:
    """Everything that defines the model's input features. Saved in every checkpoint and bundle."""

    sample_rate: int = 24000
    n_fft: int = 384
    hop: int = 96
    window: str = "hann"  # periodic Hann; the only window whose squared overlap we rely on
    n_mels: int = 64
    f_min: float = 30.0
    f_max: float = 12000.0
    log_floor: float = 1e-5  # log-mel = log(max(mel magnitude, log_floor))
    # Low-latency framing (issue 17): 0 keeps the symmetric Hann pair; S > 0 uses the asymmetric pair of
    # ``asymmetric_windows``, whose synthesis window covers only each frame's last S samples, so an output
    # sample is final S - hop after the frame that ends it starts instead of n_fft - hop. It shapes the
    # resynthesis pair only: the log-mel features keep the periodic Hann window (``feature_window``), since
    # the delay is set by the synthesis window alone (frame j's features need the same samples either way),
    # so a denoiser trained on symmetric framing plays unchanged before a low-delay stage.
    synthesis_len: int = 0

    def __post_init__(self) -> None:
        if self.window != "hann":
            raise StylehostError(f"SpectrogramConfig.window must be 'hann', got {self.window!r}")
        if self.n_fft % self.hop or self.n_fft // self.hop < 4:
            # Squared Hann windows sum to a constant only for hop = n_fft / k with k >= 4 (1.5 at k=4).
            raise StylehostError(f"n_fft ({self.n_fft}) must be a multiple of hop ({self.hop}), at least 4x")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise StylehostError(f"need 0 <= f_min < f_max <= sample_rate/2, got {self.f_min}, {self.f_max}")
        if self.n_mels < 8 or self.log_floor <= 0:
            raise StylehostError("n_mels must be >= 8 and log_floor > 0")
        if self.synthesis_len and (self.synthesis_len % self.hop or not 2 * self.hop <= self.synthesis_len
                                   <= self.n_fft or self.synthesis_len % 2):
            raise StylehostError(f"synthesis_len must be 0 (symmetric windows) or an even multiple of hop "
                                 f"({self.hop}) from {2 * self.hop} to n_fft ({self.n_fft}), got {self.synthesis_len}")

    @property
    def synthesis_span(self) -> int:
        """Samples at the end of each frame that its synthesis window covers (n_fft when symmetric)."""
        return self.synthesis_len or self.n_fft

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    def num_frames(self, num_samples: int) -> int:
        """Frames that fit entirely inside ``num_samples`` samples (0 if none)."""
        return 0 if num_samples < self.n_fft else 1 + (num_samples - self.n_fft) // self.hop

    def num_samples(self, num_frames: int) -> int:
        """Samples spanned by ``num_frames`` consecutive frames."""
        return (num_frames - 1) * self.hop + self.n_fft

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpectrogramConfig:
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - valid
        if unknown:
            raise StylehostError(f"unknown SpectrogramConfig keys {sorted(unknown)}; valid: {sorted(valid)}")
        return cls(**data)


def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window (float64), the analysis window of every STFT in the project."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def analysis_window(cfg: SpectrogramConfig) -> np.ndarray:
    """The analysis window of the resynthesis pair (the STFT that ``synthesis_window`` inverts): periodic
    Hann, or the asymmetric one (``synthesis_len``)."""
    return hann_window(cfg.n_fft) if not cfg.synthesis_len else asymmetric_windows(cfg)[0]


def feature_window(cfg: SpectrogramConfig) -> np.ndarray:
    """The window of the log-mel features: periodic Hann whatever ``synthesis_len`` is (see its comment)."""
    return hann_window(cfg.n_fft)


def same_features(a: SpectrogramConfig, b: SpectrogramConfig) -> bool:
    """Whether two configs give the same log-mel features (they may differ in their resynthesis pair)."""
    return dataclasses.replace(a, synthesis_len=0) == dataclasses.replace(b, synthesis_len=0)


def asymmetric_windows(cfg: SpectrogramConfig) -> tuple[np.ndarray, np.ndarray]:
    """(analysis, synthesis) of the low-delay pair (Mauler & Martin 2007), float64 (n_fft,) each.

    With N = n_fft and S = synthesis_len: the analysis window rises as the first half of a sqrt-Hann of
    length 2N - S and falls over the frame's last S/2 samples as the second half of a sqrt-Hann of length S,
    so it keeps most of the frequency resolution of an N-sample window; the synthesis window is zero except
    on the last S samples, where analysis x synthesis is a Hann of length S, which overlap-adds at hop H to
    S / (2H). Dividing by that reconstructs unmodified frames exactly, and the output of a frame is final
    S - H samples after it starts to count instead of N - H. Worked example (N 384, S 192, H 96): the
    overlap delay falls from 288 to 96 samples (12 to 4 ms at 24 kHz).
    """
    n, s, hop = cfg.n_fft, cfg.synthesis_span, cfg.hop
    half = s // 2
    rise = np.sqrt(hann_window(2 * (n - half))[: n - half])
    fall = np.sqrt(hann_window(s)[half:])
    analysis = np.concatenate([rise, fall])
    product = np.zeros(n)
    product[n - s :] = hann_window(s)
    synthesis = np.zeros(n)
    tail = slice(n - s, n)
    synthesis[tail] = product[tail] / np.maximum(analysis[tail], 1e-12) / (s / (2 * hop))
    return analysis, synthesis


def synthesis_window(cfg: SpectrogramConfig) -> np.ndarray:
    """Synthesis window that makes analysis+synthesis overlap-add to exactly one.

    With analysis window w and hop H, sum_k w(n - kH)^2 is constant (1.5 for Hann at n_fft = 4H),
    so w / that constant reconstructs the input exactly from unmodified frames. With ``synthesis_len``
    the asymmetric pair's synthesis window (``asymmetric_windows``).
    """
    if cfg.synthesis_len:
        return asymmetric_windows(cfg)[1]
    w = hann_window(cfg.n_fft)
    overlap = sum(np.roll(w**2, k * cfg.hop) for k in range(cfg.n_fft // cfg.hop))
    return w / overlap


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(cfg: SpectrogramConfig) -> np.ndarray:
    """Triangular HTK-mel filters, shape (n_mels, n_freqs), peak 1, no area normalisation."""
    freqs = np.arange(cfg.n_freqs) * cfg.sample_rate / cfg.n_fft
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.f_max), cfg.n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    fb = np.clip(np.minimum(rising, falling), 0.0, None)
    # A band narrower than one FFT bin would be empty: give it its nearest bin so no mel row is zero.
    for i in np.flatnonzero(fb.sum(axis=1) == 0):
        fb[i, int(np.argmin(np.abs(freqs - centre[i, 0])))] = 1.0
    return fb


def mel_to_linear_map(cfg: SpectrogramConfig) -> np.ndarray:
    """Map a per-mel-band quantity onto linear bins, shape (n_freqs, n_mels), rows summing to 1.

    Used to turn a mel-domain log-gain into a smooth log-gain per FFT bin. Bins outside
    [f_min, f_max] take the nearest band.
    """
    fb = mel_filterbank(cfg).T  # (n_freqs, n_mels)
    sums = fb.sum(axis=1, keepdims=True)
    out = np.where(sums > 0, fb / np.where(sums > 0, sums, 1.0), 0.0)
    freqs = np.arange(cfg.n_freqs) * cfg.sample_rate / cfg.n_fft
    empty = np.flatnonzero(sums[:, 0] == 0)
    out[empty[freqs[empty] < cfg.f_min], 0] = 1.0
    out[empty[freqs[empty] >= cfg.f_min], -1] = 1.0
    return out
