"""Samplers, schedules and the window-level transfer: shapes, determinism, frame-anchored starts."""

import pytest
import torch

from diffusion.errors import StylehostError
from diffusion.model import Denoiser, ModelConfig
from diffusion.sampling import sample_euler, sample_heun, transfer
from diffusion.schedule import karras_sigmas, strength_sigma, transfer_sigmas

TINY = ModelConfig(channels=(8, 16), emb_dim=16, fourier_dim=8)


def tiny_denoiser(seed: int = 0) -> Denoiser:
    torch.manual_seed(seed)
    d = Denoiser(TINY).eval()
    with torch.no_grad():  # zero-initialised output layers would make every sample equal the input
        for p in d.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return d


def test_schedules() -> None:
    s = karras_sigmas(4, 0.02, 40.0)
    assert s.shape == (5,) and s[-1] == 0 and torch.all(s[:-1] > s[1:])
    assert torch.isclose(s[0], torch.tensor(40.0)) and torch.isclose(s[3], torch.tensor(0.02))
    assert karras_sigmas(1, 0.02, 40.0).tolist() == [pytest.approx(40.0), 0.0]
    assert strength_sigma(1.0, 0.02, 40.0) == pytest.approx(40.0)
    assert strength_sigma(0.3, 0.02, 40.0) < strength_sigma(0.6, 0.02, 40.0) < 40.0
    assert transfer_sigmas(2, 0.5, 0.02, 40.0)[0] == pytest.approx(strength_sigma(0.5, 0.02, 40.0), rel=1e-5)
    with pytest.raises(StylehostError, match="strength"):
        strength_sigma(0.0, 0.02, 40.0)
    with pytest.raises(StylehostError, match="steps"):
        karras_sigmas(0, 0.02, 40.0)


@pytest.mark.parametrize("steps", [1, 2, 4, 8])
@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_transfer_shapes_and_determinism(steps: int, sampler: str) -> None:
    d = tiny_denoiser()
    src = torch.randn(3, 64, 32) * 3 - 6
    style = d.style_vector({"violin": 0.5, "flute": 0.5}, batch=3)
    kw = {"strength": 0.8, "steps": steps, "sampler": sampler, "seed": 11, "start_frames": [0, 4, 8]}
    a = transfer(d, src, style, **kw)
    assert a.shape == (3, 64, 32) and torch.isfinite(a).all()
    torch.testing.assert_close(a, transfer(d, src, style, **kw), rtol=0, atol=0)
    assert not torch.allclose(a, transfer(d, src, style, **{**kw, "seed": 12}))


def test_overlapping_windows_start_from_the_same_noise() -> None:
    """Two windows 4 frames apart draw identical start noise on their 28 shared frames."""
    d = tiny_denoiser()
    src = torch.randn(1, 64, 36)
    starts = []
    style = d.style_vector({"cello": 1.0})

    def grab(info: dict) -> None:
        if info["i"] == 0:
            starts.append(info["x"] - d.cfg.normalize(window))

    import diffusion.sampling as sampling

    original = sampling.SAMPLERS["euler"]
    sampling.SAMPLERS["euler"] = lambda *a, **k: original(*a, **k, callback=grab)
    try:
        for offset in (0, 4):
            window = src[:, :, offset : offset + 32]
            transfer(d, window, style, strength=1.0, steps=1, seed=3, start_frames=100 + offset)
    finally:
        sampling.SAMPLERS["euler"] = original
    torch.testing.assert_close(starts[0][..., 4:], starts[1][..., :28], rtol=0, atol=1e-4)


def test_one_euler_step_is_the_x0_prediction_and_heun_matches_on_linear_denoiser() -> None:
    d = tiny_denoiser()
    x, src = torch.randn(2, 1, 64, 32), torch.randn(2, 1, 64, 32)
    style = d.style_vectors(torch.eye(8)[:2])
    sig = torch.tensor([5.0, 0.0])
    args = {"source": src, "style_vec": style}
    torch.testing.assert_close(sample_euler(d, x, sig, extra_args=args), d(x, torch.full((2,), 5.0), src, style))
    # A denoiser that returns 0 makes the ODE x * sigma / sigma_0: Euler and Heun are both exact.
    zero = lambda x, sigma: torch.zeros_like(x)  # noqa: E731
    sig = torch.tensor([4.0, 2.0, 1.0, 0.0])
    for fn in (sample_euler, sample_heun):
        assert torch.all(fn(zero, x, sig) == 0)


def test_bad_inputs_are_clear_errors() -> None:
    d = tiny_denoiser()
    with pytest.raises(StylehostError, match="unknown sampler"):
        transfer(d, torch.zeros(1, 64, 32), d.style_vector({"piano": 1}), sampler="ddpm")
    with pytest.raises(StylehostError, match=r"\(B, 64, T\)"):
        transfer(d, torch.zeros(1, 80, 32), d.style_vector({"piano": 1}))
    with pytest.raises(StylehostError, match="unknown style 'banjo'"):
        d.style_vector({"banjo": 1.0})
