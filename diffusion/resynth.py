"""Phase-guided resynthesis: the first spectrogram-to-audio path (a better vocoder is its own issue).

The model predicts a log-mel window; audio needs a complex STFT. We keep the source's own STFT
(its phase, and its fine harmonic structure within each mel band) and only change band energies:
``out = source_stft * exp(clamp(mel_gain_to_linear(pred_logmel - source_logmel), -max, +max))``,
then iSTFT. The clamp stops bins the source left silent (at the log floor) from being boosted into
loud noise. Written as a torch module over the shared SpectrogramTransform so it exports to ONNX.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from diffusion.features import SpectrogramConfig, SpectrogramTransform


class PhaseGuidedResynth(nn.Module):
    """(B, num_samples(T)) source audio + (B, n_mels, T) predicted log-mel -> (B, num_samples(T)) audio.

    Only samples covered by all n_fft/hop frames are exact overlap-add; a streaming caller keeps the
    middle and overlap-adds the edges itself (``delay_samples`` = n_fft - hop at each end).
    """

    def __init__(self, cfg: SpectrogramConfig, max_gain_db: float = 30.0) -> None:
        super().__init__()
        self.cfg = cfg
        self.transform = SpectrogramTransform(cfg)
        self.max_log_gain = max_gain_db * math.log(10.0) / 20.0  # dB -> natural-log amplitude gain
        self.delay_samples = cfg.n_fft - cfg.hop

    def forward(self, source_wave: torch.Tensor, pred_logmel: torch.Tensor) -> torch.Tensor:
        real, imag = self.transform.stft(source_wave)
        if self.transform.paired_features:
            source_logmel = self.transform.log_mel_from_magnitude(self.transform.magnitude(real, imag))
        else:  # the gain is a ratio of two feature log-mels, applied to the low-delay pair's STFT
            source_logmel = self.transform.log_mel(source_wave)
        gain = self.transform.mel_gain_to_linear(pred_logmel - source_logmel)
        gain = torch.exp(torch.clamp(gain, -self.max_log_gain, self.max_log_gain))
        return self.transform.istft(real * gain, imag * gain)
