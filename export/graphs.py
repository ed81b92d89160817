"""The three torch modules a bundle exports, built from the SAME modules training and the offline
reference use (Denoiser, SpectrogramTransform, PhaseGuidedResynth or the learned GuideStage), with
their ONNX I/O specs.

The runtime's per-call work is then: frontend on the window -> ``steps`` denoiser calls -> resynth of
the S emitted frames -> overlap-add of those S frames at hop spacing (plain numpy). With a learned
stage (diffusion/guide.py) the resynth graph also reads ``before`` earlier and ``after`` later frames
of the window (source frames and predicted log-mel), and still returns the S emitted frames.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from diffusion.guide import GuideStage
from diffusion.model import Denoiser
from diffusion.resynth import PhaseGuidedResynth


class Frontend(nn.Module):
    """(B, window samples) audio -> (B, n_mels, T) natural-log mel (not normalised: the runtime
    normalises with the manifest's constants, and needs the raw log-mel for nothing else)."""

    def __init__(self, resynth: PhaseGuidedResynth) -> None:
        super().__init__()
        self.transform = resynth.transform

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.transform.log_mel(audio)


class FrameResynth(nn.Module):
    """(B, S, n_fft) source frames + (B, n_mels, S) predicted log-mel -> (B, S, n_fft) synthesised frames.

    Each frame goes through PhaseGuidedResynth on its own (a batch of one-frame clips): the iSTFT of a
    single frame is that frame's synthesis-windowed contribution, so overlap-adding the S outputs at
    hop spacing equals the module's own multi-frame output, and the caller can leave out frames the
    offline reference does not have (before the stream's first frame).
    """

    def __init__(self, resynth: PhaseGuidedResynth) -> None:
        super().__init__()
        self.resynth = resynth
        self.n_fft = resynth.cfg.n_fft
        self.n_mels = resynth.cfg.n_mels

    def forward(self, frames: torch.Tensor, pred_logmel: torch.Tensor) -> torch.Tensor:
        flat = frames.reshape(-1, self.n_fft)
        pred = pred_logmel.transpose(1, 2).reshape(-1, self.n_mels).unsqueeze(2)
        return self.resynth(flat, pred).reshape_as(frames)


def build_modules(denoiser: Denoiser, stage: GuideStage | None = None) -> dict[str, nn.Module]:
    resynth = PhaseGuidedResynth(denoiser.cfg.spectrogram).eval()
    out = FrameResynth(resynth).eval() if stage is None else stage.eval()
    return {"denoiser": denoiser.eval(), "frontend": Frontend(resynth).eval(), "resynth": out}


def context_of(stage: GuideStage | None) -> tuple[int, int]:
    """(before, after): frames the resynth graph reads around the emitted ones (0, 0 without a stage)."""
    return (0, 0) if stage is None else (stage.before, stage.after)


def io_specs(denoiser: Denoiser, stage: GuideStage | None = None) -> dict[str, dict[str, Any]]:
    """Names, dtypes and shapes (str = dynamic axis) of every graph, as written into the manifest."""
    cfg = denoiser.cfg
    m, t, n_fft = cfg.n_mels, cfg.window, cfg.spectrogram.n_fft
    samples = cfg.spectrogram.num_samples(t)
    frames = "emit" if stage is None else "context_frames"

    def io(name: str, *shape: int | str) -> dict[str, Any]:
        return {"name": name, "dtype": "float32", "shape": list(shape)}

    return {
        "denoiser": {
            "inputs": [io("x", "batch", 1, m, t), io("sigma", "batch"),
                       io("source", "batch", cfg.source_channels, m, t), io("style_vec", "batch", cfg.emb_dim)],
            "outputs": [io("x0", "batch", 1, m, t)],
        },
        "frontend": {"inputs": [io("audio", "batch", samples)], "outputs": [io("logmel", "batch", m, t)]},
        "resynth": {
            # With a stage the inputs hold emit + before + after frames: another dynamic axis.
            "inputs": [io("frames", "batch", frames, n_fft), io("pred_logmel", "batch", m, frames)],
            "outputs": [io("out_frames", "batch", "emit", n_fft)],
        },
    }


def example_inputs(denoiser: Denoiser, batch: int = 2, emit: int = 4, seed: int = 0,
                   stage: GuideStage | None = None) -> dict[str, tuple]:
    """Seeded random inputs of every graph (also the tracing inputs of the export)."""
    cfg = denoiser.cfg
    g = torch.Generator().manual_seed(seed)
    m, t, n_fft = cfg.n_mels, cfg.window, cfg.spectrogram.n_fft
    table = denoiser.net.style_table.detach()
    weights = torch.rand(batch, len(cfg.styles), generator=g)
    sigma = torch.exp(torch.empty(batch).uniform_(-3.9, 3.7, generator=g))  # ~0.02 .. 40
    x = torch.randn(batch, 1, m, t, generator=g) * sigma[:, None, None, None]
    audio = 0.1 * torch.randn(batch, cfg.spectrogram.num_samples(t), generator=g)
    n = emit + sum(context_of(stage))
    frames = 0.1 * torch.randn(batch, n, n_fft, generator=g)
    pred = torch.randn(batch, m, n, generator=g) - 4.0
    style = (weights / weights.sum(1, keepdim=True)) @ table
    return {
        "denoiser": (x, sigma, torch.randn(batch, cfg.source_channels, m, t, generator=g), style),
        "frontend": (audio,),
        "resynth": (frames, pred),
    }
