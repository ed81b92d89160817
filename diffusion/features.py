"""The one STFT / log-mel transform (torch), used by training, export and the torch backend.

The STFT and its inverse are written as fixed convolutions (DFT kernels) so that the very same
module exports to ONNX and runs in every backend. The config, windows and filterbank it is built
from live in the torch-free diffusion/spectrogram.py (re-exported here for the training code).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from diffusion.spectrogram import (  # noqa: F401 - re-exported: one import site for training code
    SpectrogramConfig,
    analysis_window,
    feature_window,
    hann_window,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    mel_to_linear_map,
    synthesis_window,
)


class SpectrogramTransform(nn.Module):
    """STFT, log-mel and inverse STFT as fixed convolutions (ONNX-exportable, float32 or float64).

    Shapes: waveform (B, samples) -> complex parts (B, n_freqs, frames) each -> log-mel
    (B, n_mels, frames). ``istft`` overlap-adds (B, n_freqs, frames) back to (B, num_samples(frames)).
    """

    # Buffers registered in __init__; declared here so type checkers see Tensors, not Tensor | Module.
    analysis: torch.Tensor
    feature_analysis: torch.Tensor
    synthesis: torch.Tensor
    mel_fb: torch.Tensor
    mel_to_lin: torch.Tensor

    def __init__(self, cfg: SpectrogramConfig, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.cfg = cfg
        n = np.arange(cfg.n_fft)
        k = np.arange(cfg.n_freqs)
        angle = 2.0 * math.pi * np.outer(k, n) / cfg.n_fft  # (F, N)
        w = analysis_window(cfg)
        analysis = np.concatenate([np.cos(angle) * w, -np.sin(angle) * w])[:, None, :]  # (2F, 1, N)
        # Real inverse DFT: x[n] = (1/N) sum_k c_k (Re X_k cos - Im X_k sin), c_k = 1 at DC/Nyquist, else 2.
        c = np.full(cfg.n_freqs, 2.0)
        c[0] = 1.0
        if cfg.n_fft % 2 == 0:
            c[-1] = 1.0
        ws = synthesis_window(cfg)
        synth = np.concatenate([c[:, None] * np.cos(angle), -c[:, None] * np.sin(angle)]) * ws / cfg.n_fft
        self.register_buffer("analysis", torch.tensor(analysis, dtype=dtype), persistent=False)
        # The log-mel's own kernel: the same tensor as ``analysis`` unless the pair is the low-delay one.
        self.paired_features = not cfg.synthesis_len
        features = analysis if self.paired_features else np.concatenate(
            [np.cos(angle) * feature_window(cfg), -np.sin(angle) * feature_window(cfg)])[:, None, :]
        self.register_buffer("feature_analysis", torch.tensor(features, dtype=dtype), persistent=False)
        self.register_buffer("synthesis", torch.tensor(synth[:, None, :], dtype=dtype), persistent=False)
        self.register_buffer("mel_fb", torch.tensor(mel_filterbank(cfg), dtype=dtype), persistent=False)
        self.register_buffer(
            "mel_to_lin", torch.tensor(mel_to_linear_map(cfg), dtype=dtype), persistent=False
        )

    def stft(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, samples) -> (real, imag), each (B, n_freqs, frames): the resynthesis pair's STFT (``istft``
        inverts it)."""
        spec = nn.functional.conv1d(wave.unsqueeze(1), self.analysis, stride=self.cfg.hop)
        return spec[:, : self.cfg.n_freqs], spec[:, self.cfg.n_freqs :]

    def feature_stft(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, samples) -> (real, imag) with the features' window (``stft`` itself for the symmetric pair)."""
        if self.paired_features:
            return self.stft(wave)
        spec = nn.functional.conv1d(wave.unsqueeze(1), self.feature_analysis, stride=self.cfg.hop)
        return spec[:, : self.cfg.n_freqs], spec[:, self.cfg.n_freqs :]

    def istft(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        """(B, n_freqs, frames) x2 -> (B, num_samples(frames)); exact inverse where frames fully overlap."""
        spec = torch.cat([real, imag], dim=1)
        return nn.functional.conv_transpose1d(spec, self.synthesis, stride=self.cfg.hop).squeeze(1)

    def magnitude(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(real * real + imag * imag + 1e-20)

    def log_mel_from_magnitude(self, mag: torch.Tensor) -> torch.Tensor:
        """(B, n_freqs, frames) magnitude -> (B, n_mels, frames) natural-log mel magnitude."""
        mel = torch.matmul(self.mel_fb, mag)
        return torch.log(torch.clamp(mel, min=self.cfg.log_floor))

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> (B, n_mels, frames)."""
        return self.log_mel_from_magnitude(self.magnitude(*self.feature_stft(wave)))  # audit: features-hann

    def log_mel_cut_tail(self, wave: torch.Tensor, samples: int) -> torch.Tensor:
        """(B, samples) -> (B, n_mels, frames): each frame's log-mel with its last ``samples`` samples zeroed,
        the frames of ``log_mel``. The live processor's excitation window ends with a hop of zeros (its
        generator lags one hop), so the newest column it hears is this one (diffusion/stream.py)."""
        frames = (wave.shape[-1] - self.cfg.n_fft) // self.cfg.hop + 1
        kernel = self.feature_analysis[..., : self.cfg.n_fft - samples]
        spec = nn.functional.conv1d(wave.unsqueeze(1), kernel, stride=self.cfg.hop)[..., :frames]
        return self.log_mel_from_magnitude(self.magnitude(spec[:, : self.cfg.n_freqs], spec[:, self.cfg.n_freqs :]))

    def mel_gain_to_linear(self, log_gain: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, frames) natural-log gain -> (B, n_freqs, frames) natural-log gain per bin."""
        return torch.matmul(self.mel_to_lin, log_gain)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.log_mel(wave)
