"""Quality metrics on audio: log-mel distance, chroma similarity, Frechet distance, static-EQ baseline.

All of them compare a processed clip with the true target rendering of the same notes, so they
are only meaningful on the paired test split. Distances reward blurry averages; the Frechet
distance over style-classifier embeddings (see ``classifier.py``) is there to catch that.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

from diffusion.features import SpectrogramConfig, SpectrogramTransform

DB_RANGE = 80.0  # dB below the target's peak that a bin is clamped to before comparing


def log_mel_db(audio: np.ndarray, transform: SpectrogramTransform) -> np.ndarray:
    """(samples,) -> (n_mels, frames) mel magnitude in dB."""
    with torch.no_grad():
        logmel = transform.log_mel(torch.as_tensor(audio, dtype=torch.float32)[None])[0].numpy()
    return logmel * (20.0 / np.log(10.0))


def loudness_match(audio: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Scale ``audio`` to the RMS of ``reference`` (silence stays silence)."""
    rms, ref = np.sqrt(np.mean(audio**2)), np.sqrt(np.mean(reference**2))
    return audio * (ref / rms) if rms > 1e-9 else audio


def log_mel_distance(output: np.ndarray, target: np.ndarray, transform: SpectrogramTransform) -> float:
    """Mean absolute log-mel difference in dB after loudness matching, both floored 80 dB under the target peak."""
    out_db = log_mel_db(loudness_match(output, target), transform)
    tgt_db = log_mel_db(target, transform)
    floor = tgt_db.max() - DB_RANGE
    return float(np.mean(np.abs(np.maximum(out_db, floor) - np.maximum(tgt_db, floor))))


def chroma(audio: np.ndarray, cfg: SpectrogramConfig, n_fft: int = 4096, hop: int = 1024) -> np.ndarray:
    """(12, frames) energy-normalised chroma from a long-window STFT (pitch classes need fine bins)."""
    if len(audio) < n_fft:
        audio = np.pad(audio, (0, n_fft - len(audio)))
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, bins)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / cfg.sample_rate)
    valid = (freqs >= 55.0) & (freqs <= 4200.0)
    pitch_class = np.mod(np.round(12 * np.log2(freqs[valid] / 440.0)) + 9, 12).astype(int)
    out = np.zeros((12, power.shape[0]))
    np.add.at(out, pitch_class, power[:, valid].T)
    return out / (out.sum(axis=0, keepdims=True) + 1e-12)


def chroma_similarity(output: np.ndarray, target: np.ndarray, cfg: SpectrogramConfig) -> float:
    """Mean cosine similarity of chroma vectors over frames where the target has energy."""
    a, b = chroma(output, cfg), chroma(target, cfg)
    n = min(a.shape[1], b.shape[1])
    a, b = a[:, :n], b[:, :n]
    energy = np.array([np.sum(target[i * 1024 : i * 1024 + 4096] ** 2) for i in range(n)])
    keep = energy > 1e-3 * energy.max() if energy.max() > 0 else np.ones(n, bool)
    cos = (a * b).sum(0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0) + 1e-12)
    return float(cos[keep].mean())


def static_eq_log_gain(source_logmel: np.ndarray, target_logmel: np.ndarray) -> np.ndarray:
    """The best fixed per-band gain from source to target (natural-log, (n_mels, 1)).

    Computed from the pair itself, so it is an oracle for any EQ: the mean log-ratio per band over
    frames where either side is audible.
    """
    audible = np.maximum(source_logmel, target_logmel) > (target_logmel.max() - 8.0)
    diff = np.where(audible, target_logmel - source_logmel, 0.0)
    return (diff.sum(axis=1) / np.maximum(audible.sum(axis=1), 1))[:, None]


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two embedding sets (rows are samples)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(linalg.sqrtm(cov_a @ cov_b))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2.0 * covmean))
