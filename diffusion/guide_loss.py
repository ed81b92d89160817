"""Multi-resolution STFT loss and distance (Yamamoto, Song & Kim 2020, Parallel WaveGAN, sec. 2.3).

Per resolution (FFT size n, hop n/4, Hann window): spectral convergence
``|| |S_t| - |S_o| ||_F / || |S_t| ||_F`` plus the mean absolute log-magnitude difference; the
figure is the mean over resolutions of their sum. Both compare magnitudes only, so two waveforms
with the same spectra at every resolution score 0 whatever their phases (the target rendering's
phase is not aligned with the source's, see guide.py).

``mrstft_loss`` is the training loss (batched torch, differentiable). ``mrstft_distance`` is the
evaluation figure on whole clips: after the same loudness match as ``metrics.log_mel_distance``,
and with magnitudes floored 80 dB under the target's peak, so silence in both does not count.
"""

from __future__ import annotations

import numpy as np
import torch

from diffusion.metrics import DB_RANGE, loudness_match

RESOLUTIONS = (128, 256, 512, 1024)


def _mag(wave: torch.Tensor, n_fft: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, dtype=wave.dtype, device=wave.device)
    spec = torch.stft(wave, n_fft, hop_length=n_fft // 4, window=window, center=False, return_complex=True)
    return torch.sqrt(spec.real**2 + spec.imag**2 + 1e-12)


def mrstft_loss(output: torch.Tensor, target: torch.Tensor, resolutions: tuple[int, ...] = RESOLUTIONS,
                floor: float = 1e-5) -> torch.Tensor:
    """(B, samples) x2 -> scalar; mean over resolutions of spectral convergence (batch norms) + log-magnitude L1."""
    total = output.new_zeros(())
    for n in resolutions:
        o, t = _mag(output, n), _mag(target, n)
        # Over the whole batch: a silent target crop (rests are common) would make a per-example ratio explode.
        sc = torch.linalg.norm(t - o) / (torch.linalg.norm(t) + 1e-7)
        lm = (torch.log(torch.clamp(o, min=floor)) - torch.log(torch.clamp(t, min=floor))).abs().mean()
        total = total + sc + lm
    return total / len(resolutions)


def mrstft_distance(output: np.ndarray, target: np.ndarray, resolutions: tuple[int, ...] = RESOLUTIONS) -> float:
    """Whole-clip multi-resolution STFT distance (lower is better); see the module docstring."""
    out = torch.as_tensor(loudness_match(np.asarray(output, np.float64), target))[None]
    tgt = torch.as_tensor(np.asarray(target, np.float64))[None]
    total = 0.0
    for n in resolutions:
        o, t = _mag(out, n), _mag(tgt, n)
        floor = float(t.max()) * 10 ** (-DB_RANGE / 20)
        o, t = torch.clamp(o, min=floor), torch.clamp(t, min=floor)
        sc = float(torch.linalg.norm(t - o) / torch.linalg.norm(t))
        lm = float((torch.log(o) - torch.log(t)).abs().mean())
        total += sc + lm
    return total / len(resolutions)
