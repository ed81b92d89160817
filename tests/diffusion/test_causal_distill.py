"""`stylehost causal-distill`: a causal student regressed onto a windowed one (issue 17)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from diffusion.causal import CausalDenoiser
from diffusion.causal_distill import (
    CausalDistillConfig,
    causal_distill,
    copy_matching,
    loaded_frames,
    shipped_targets,
    student_config,
    validate,
)
from diffusion.checkpoint import load_denoiser, model_sampler
from diffusion.config import load_config
from diffusion.errors import StylehostError
from diffusion.pairs import fixed_windows, load_clips
from tests.diffusion.synthdata import make_dataset
from tests.export.tiny import tiny_model

SMALL = ["causal.dilations=[1,2]", "frames=40", "loss_from=32", "lookahead=1", "batch_size=4", "workers=0",
         "threads=1", "val_windows=8", "val_every=1000", "checkpoint_every=1000"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("synth"), clips=5, seconds=0.6)


def test_the_targets_are_the_shipped_windows_emitted_frames(tmp_path: Path) -> None:
    """Each group of the shipped student's ``emit`` frames comes from the call on the window ending its
    ``lookahead`` frames later, as the live processor and the offline reference call it."""
    shipped = load_denoiser(tiny_model(tmp_path / "s.pt"))
    mc = shipped.cfg
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, mc.n_mels, 42, generator=g)
    src = torch.randn(2, 1, mc.n_mels, 42, generator=g)
    sigma, style = torch.tensor([3.0, 0.5]), shipped.style_vector({mc.styles[0]: 1.0}, 2)
    got = shipped_targets(shipped, x, sigma, src, style, loss_from=32, frames=40)
    assert got.shape == (2, 1, mc.n_mels, 8)
    with torch.no_grad():  # frames 36..39: the window [10, 42) emits its columns [26, 30)
        want = shipped(x[..., 10:42], sigma, src[..., 10:42], style)[..., 26:30]
    torch.testing.assert_close(got[..., 4:], want, atol=1e-5, rtol=0)


def test_framing_that_the_shipped_windows_cannot_cover_is_refused(tmp_path: Path) -> None:
    mc = load_denoiser(tiny_model(tmp_path / "s.pt")).cfg
    with pytest.raises(StylehostError, match="multiple"):
        loaded_frames(mc, CausalDistillConfig(frames=40, loss_from=30))
    with pytest.raises(StylehostError, match="loss_from"):
        loaded_frames(mc, CausalDistillConfig(frames=40, loss_from=20))


def test_the_regression_loss_falls_and_the_student_is_causal(data: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    shipped_path = tiny_model(tmp_path / "s.pt", meta={"kind": "student", "sampler": "consistency"})
    shipped = load_denoiser(shipped_path)
    cfg = load_config(CausalDistillConfig, None, [*SMALL, "steps=40", "lr=3e-3", "warmup=5"])
    mc = student_config(shipped.cfg, cfg)
    load_cfg = dataclasses.replace(mc, window=loaded_frames(shipped.cfg, cfg))
    val = fixed_windows(load_clips(data, load_cfg, "val"), load_cfg, 8)
    start = CausalDenoiser(mc)
    copy_matching(start, shipped)
    before = validate(start, shipped, val, cfg)["val_loss"]
    ema = causal_distill(cfg, shipped_path, data, tmp_path / "run", progress=False)
    after = validate(ema, shipped, val, cfg)["val_loss"]
    assert after < 0.7 * before, (before, after)
    saved = load_denoiser(tmp_path / "run" / "model.pt")
    assert isinstance(saved, CausalDenoiser) and saved.cfg.lookahead == 1 and saved.cfg.causal == cfg.causal
    assert model_sampler(tmp_path / "run" / "model.pt") == "consistency"  # it samples as the model it copies
    with pytest.raises(StylehostError, match="itself causal"):  # a causal model is no window student to regress onto
        causal_distill(cfg, tmp_path / "run" / "model.pt", data, tmp_path / "again", progress=False)
