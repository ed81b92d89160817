"""The denoiser network: shapes, style mixing, EDM wrapping, size figures, ONNX parity; resynthesis."""

from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion.errors import StylehostError
from diffusion.features import SpectrogramConfig, SpectrogramTransform
from diffusion.model import Denoiser, ModelConfig, count_macs, parameter_count
from diffusion.resynth import PhaseGuidedResynth


@pytest.mark.parametrize("channels", [(8, 16), (8, 16, 32, 32)])
def test_forward_shapes_and_identity_at_init(channels: tuple[int, ...]) -> None:
    d = Denoiser(ModelConfig(channels=channels, emb_dim=16, fourier_dim=8))
    x, src = torch.randn(2, 1, 64, 32), torch.randn(2, 1, 64, 32)
    out = d(x, torch.tensor([0.5, 3.0]), src, d.style_vector({"organ": 1.0}, batch=2))
    assert out.shape == (2, 1, 64, 32)
    # The output layer starts at zero, so D(x) = c_skip * x: the EDM wrapper alone.
    c_skip = 1.0 / (torch.tensor([0.5, 3.0]) ** 2 + 1.0)
    torch.testing.assert_close(out, c_skip[:, None, None, None] * x)


def test_style_mix_is_a_weighted_sum_of_rows() -> None:
    d = Denoiser(ModelConfig(channels=(8, 16), emb_dim=16, fourier_dim=8))
    table = d.net.style_table
    mix = d.style_vector({"violin": 0.7, "flute": 0.3})
    torch.testing.assert_close(mix[0], 0.7 * table[3] + 0.3 * table[7])


def test_default_size_fits_the_realtime_budget() -> None:
    d = Denoiser(ModelConfig())
    assert 0.3e6 < parameter_count(d) < 1.5e6
    assert count_macs(d) < 150e6


def test_config_validation() -> None:
    with pytest.raises(StylehostError, match="divisible"):
        ModelConfig(channels=(8,) * 7)
    with pytest.raises(StylehostError, match="unknown style"):
        ModelConfig(styles=("piano", "banjo"))
    with pytest.raises(StylehostError, match="lookahead"):
        ModelConfig(lookahead=30, emit=4)
    cfg = ModelConfig()
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_onnx_export_matches_torch(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    d = Denoiser(ModelConfig(channels=(8, 16, 16), emb_dim=16, fourier_dim=8)).eval()
    with torch.no_grad():
        for p in d.parameters():
            p.add_(0.05 * torch.randn_like(p))
    args = (torch.randn(2, 1, 64, 32), torch.tensor([0.3, 7.0]), torch.randn(2, 1, 64, 32), torch.randn(2, 16))
    names = ["x", "sigma", "source", "style_vec"]
    path = tmp_path / "d.onnx"
    torch.onnx.export(d, args, path, input_names=names, output_names=["x0"], opset_version=17, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {n: a.numpy() for n, a in zip(names, args, strict=True)})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, d(*args).numpy(), atol=1e-4)


def test_resynthesis_with_unchanged_logmel_gives_back_the_source() -> None:
    cfg = SpectrogramConfig()
    rng = np.random.default_rng(0)
    wave = torch.tensor(rng.standard_normal(cfg.num_samples(32)) * 0.1, dtype=torch.float32)[None]
    resynth = PhaseGuidedResynth(cfg)
    same = resynth(wave, SpectrogramTransform(cfg).log_mel(wave))
    edge = resynth.delay_samples
    torch.testing.assert_close(same[:, edge:-edge], wave[:, edge:-edge], atol=1e-4, rtol=0)
    louder = resynth(wave, SpectrogramTransform(cfg).log_mel(wave) + np.log(2.0))
    torch.testing.assert_close(louder[:, edge:-edge], 2 * wave[:, edge:-edge], atol=1e-3, rtol=0)
