"""A denoiser hearing both the input and its harmonic excitation (issue 15, source_input "both"): widened from
a one-channel model without changing it, trained on both windows, played live as offline, refused where the
channel count and what it is told to hear disagree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion.errors import StylehostError
from diffusion.excitation import ExcitationConfig
from diffusion.model import ModelConfig
from tests.export.tiny import TINY, tiny_model


def test_a_one_channel_model_starts_a_two_channel_one_unchanged(tmp_path: Path) -> None:
    """The excitation channel's stem weights start at zero: step 0 of the fine-tune is the source-hearing model."""
    from diffusion.checkpoint import load_denoiser
    from diffusion.model import Denoiser
    from diffusion.train import init_weights

    one = load_denoiser(tiny_model(tmp_path / "one.pt"))
    two = Denoiser(ModelConfig(**TINY, source_channels=2))
    two.load_state_dict(init_weights(tmp_path / "one.pt", two.cfg))
    g = torch.Generator().manual_seed(0)
    m, t = one.cfg.n_mels, one.cfg.window
    x, src, exc = (torch.randn(2, 1, m, t, generator=g) for _ in range(3))
    sigma, style = torch.tensor([0.5, 3.0]), one.style_vector({one.cfg.styles[0]: 1.0}, 2)
    with torch.no_grad():
        np.testing.assert_allclose(two(x, sigma, torch.cat([src, exc], 1), style), one(x, sigma, src, style),
                                   atol=1e-6, rtol=0)
    with pytest.raises(StylehostError, match="another model config"):
        init_weights(tmp_path / "one.pt", ModelConfig(**{**TINY, "emb_dim": 32}, source_channels=2))


def test_a_model_hears_exactly_its_channels() -> None:
    cfg = ModelConfig(**TINY, source_channels=2)
    m, t = cfg.n_mels, cfg.window
    assert cfg.heard(torch.zeros(3, 2, m, t)).shape == (3, 2, m, t)
    with pytest.raises(StylehostError, match="its excitation"):
        cfg.heard(torch.zeros(3, m, t))  # one window for a model that hears two
    with pytest.raises(StylehostError, match="source_channels"):
        ModelConfig(source_channels=3)


def test_both_windows_are_the_input_and_its_excitation(small_dataset: Path) -> None:
    from diffusion.features import SpectrogramTransform
    from diffusion.pairs import PairWindows, load_clips

    styles = ("piano", "guitar", "flute")  # the small dataset's
    cfg = ModelConfig(styles=styles, source_channels=2)
    one = ModelConfig(styles=styles)
    clips = load_clips(small_dataset, cfg, "train")
    both = PairWindows(clips, cfg, 3, (0,), None, 0.0, source_input="both")
    plain = PairWindows(clips, one, 3, (0,), None, 0.0)
    excited = PairWindows(clips, one, 3, (0,), None, 0.0, source_input="excitation")
    transform = SpectrogramTransform(cfg.spectrogram)
    b, p, e = (w.batch(np.random.default_rng(5), transform) for w in (both, plain, excited))
    assert b["source"].shape == (3, 2, cfg.n_mels, cfg.window)
    np.testing.assert_allclose(b["source"][:, 0], p["source"], atol=1e-5)
    np.testing.assert_allclose(b["source"][:, 1], e["source"], atol=1e-5)
    assert torch.equal(b["target"], p["target"])
    with pytest.raises(StylehostError, match="source_channels"):
        PairWindows(clips, one, 3, (0,), None, 0.0, source_input="both")
    with pytest.raises(StylehostError, match="source_channels"):
        PairWindows(clips, cfg, 3, (0,), None, 0.0, source_input="excitation")


def both_bundle(tmp_path: Path):  # -> export.bundle.Bundle
    from diffusion.guide import load_stage, save_stage
    from export.onnx import export_bundle
    from tests.diffusion.test_guide_bundle import tiny_stage_file

    stage = tmp_path / "exc.pt"
    save_stage(stage, load_stage(tiny_stage_file(tmp_path / "g.pt")), {"step": 0, "config": {"excitation": True}})
    model = tiny_model(tmp_path / "both.pt", meta={"config": {"source_input": "both"}}, source_channels=2)
    return export_bundle(model, tmp_path / "b", stage_path=stage)


def test_the_processor_plays_a_both_bundle_as_the_offline_reference(tmp_path: Path) -> None:
    from diffusion.checkpoint import load_denoiser
    from realtime.backends.choose import open_backend
    from realtime.model_processor import ModelProcessor
    from tests.diffusion.test_excitation import offline_reference, vibrato_sine
    from tests.diffusion.test_guide_bundle import MIX
    from tests.realtime.test_processor import stream

    torch.set_num_threads(1)
    bundle = both_bundle(tmp_path)
    assert bundle.denoiser_input == "both" and bundle.excitation is not None
    proc = ModelProcessor(bundle, open_backend(bundle, "cpu"), emit=2)
    proc.set_params(style_mix=MIX, strength=1.0, steps=1)
    x, _ = vibrato_sine(0.8, 330.0)
    y = stream(proc, x)
    d = load_denoiser(bundle.torch_weights)
    want = offline_reference(proc, x, len(y), d, excitation=ExcitationConfig(), denoiser_input="both")
    np.testing.assert_allclose(y, want, atol=1e-4, rtol=0)
    # the excitation channel is heard: silencing its stem weights changes the output
    with torch.no_grad():
        d.net.stem.weight[:, 2:] = 0.0
    deaf = offline_reference(proc, x, len(y), d, excitation=ExcitationConfig(), denoiser_input="both")
    assert np.abs(deaf - want).max() > 1e-3 * np.abs(want).max()
    for other in ("source", "excitation"):
        with pytest.raises(StylehostError, match="cannot hear"):
            ModelProcessor(bundle, open_backend(bundle, "cpu"), emit=2, denoiser_input=other)


def test_export_refuses_a_file_whose_channels_and_training_disagree(tmp_path: Path) -> None:
    from export.onnx import export_bundle

    with pytest.raises(StylehostError, match="inconsistent"):
        export_bundle(tiny_model(tmp_path / "m.pt", source_channels=2), tmp_path / "b")
