"""The causal streaming denoiser (issue 17, diffusion/causal.py): n frames at a time with the state carried give
exactly the whole-sequence pass; no output hears a later frame or one beyond its receptive field; the graph with
its state in and out runs in ONNX Runtime as in torch; and one frame costs a fraction of today's window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusion.causal import CausalConfig, CausalDenoiser, frame_macs
from diffusion.errors import StylehostError
from diffusion.model import Denoiser, ModelConfig, count_macs

SMALL = ModelConfig(channels=(8, 16), emb_dim=16, fourier_dim=8)


def perturbed(seed: int = 0, cfg: ModelConfig = SMALL, causal: CausalConfig | None = None) -> CausalDenoiser:
    """Weights moved off the identity init (zero output convs would hide a wrong state)."""
    torch.manual_seed(seed)
    d = CausalDenoiser(cfg, causal).double().eval()
    with torch.no_grad():
        for p in d.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return d


def inputs(frames: int, cfg: ModelConfig = SMALL, seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 1, cfg.n_mels, frames, generator=g, dtype=torch.float64)
    src = torch.randn(2, cfg.source_channels, cfg.n_mels, frames, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.5, 3.0], dtype=torch.float64)
    style = torch.randn(2, cfg.emb_dim, generator=g, dtype=torch.float64)
    return x, sigma, src, style


@pytest.mark.parametrize("out_norm", [True, False])
@pytest.mark.parametrize("chunks", [[1] * 12, [2] * 6, [3, 1, 4, 2, 2]])
def test_streaming_in_chunks_equals_the_whole_sequence(chunks: list[int], out_norm: bool) -> None:
    d = perturbed(causal=CausalConfig(out_norm=out_norm))
    x, sigma, src, style = inputs(sum(chunks))
    with torch.no_grad():
        whole = d(x, sigma, src, style)
        state = [s.double() for s in d.init_state(2)]
        parts, t = [], 0
        for n in chunks:
            y, state = d.step(x[..., t : t + n], sigma, src[..., t : t + n], style, state)
            parts.append(y)
            t += n
    torch.testing.assert_close(torch.cat(parts, dim=-1), whole, atol=1e-12, rtol=0)


def test_no_output_hears_a_later_frame_or_one_beyond_its_receptive_field() -> None:
    d = perturbed(causal=CausalConfig(dilations=(1, 2)))
    rf = d.net.receptive_field
    frames = rf + 8
    x, sigma, src, style = inputs(frames)
    with torch.no_grad():
        base = d(x, sigma, src, style)
        for t in (frames - 1, 5):  # a later frame changes nothing before it
            moved = src.clone()
            moved[..., t] += 1.0
            diff = (d(x, sigma, moved, style) - base).abs().amax(dim=(0, 1, 2))
            assert diff[:t].max() == 0 and diff[t] > 0
        last = frames - 1
        for t, heard in ((last - rf, False), (last - rf + 1, True)):
            moved = x.clone()
            moved[..., t] += 1.0
            changed = bool((d(x, sigma, src, style) != d(moved, sigma, src, style))[..., last].any())
            assert changed == heard, (t, rf)


@pytest.mark.parametrize("frames", [1, 2])
def test_the_graph_with_its_state_runs_in_onnx_runtime(tmp_path, frames: int) -> None:  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    d = perturbed().float()
    names = [f"state{i}" for i in range(len(d.init_state()))]

    class Step(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.d = d

        def forward(self, x, sigma, source, style, *state):  # type: ignore[no-untyped-def]
            y, new = self.d.step(x, sigma, source, style, list(state))
            return (y, *new)

    x, sigma, src, style = (t.float() for t in inputs(frames))
    state = d.init_state(2)
    path = tmp_path / "causal.onnx"
    torch.onnx.export(Step(), (x, sigma, src, style, *state), path, input_names=["x", "sigma", "source", "style",
                      *names], output_names=["x0", *[f"new_{n}" for n in names]], opset_version=17, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"x": x.numpy(), "sigma": sigma.numpy(), "source": src.numpy(), "style": style.numpy()}
    with torch.no_grad():
        for _call in range(3):  # the state that comes out goes back in, call after call
            got = sess.run(None, {**feeds, **{n: s.numpy() for n, s in zip(names, state, strict=True)}})
            want, carried = d.step(x, sigma, src, style, state)
            np.testing.assert_allclose(got[0], want.numpy(), atol=1e-5, rtol=0)
            state = [torch.from_numpy(s) for s in got[1:]]
            for a, b in zip(state, carried, strict=True):
                np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, rtol=0)


def test_one_frame_costs_a_fraction_of_todays_window() -> None:
    """At the shipped widths: MACs of one streamed frame against one UNet call (which emits 2 frames)."""
    cfg = ModelConfig()
    per_frame = frame_macs(CausalDenoiser(cfg))
    per_window = count_macs(Denoiser(cfg))
    assert 2 * per_frame < per_window / 4  # 2 frames per call: under a quarter of today's call


def test_a_dilation_per_level_is_required() -> None:
    with pytest.raises(StylehostError, match="one dilation per level"):
        CausalDenoiser(SMALL, CausalConfig(dilations=(1, 2, 4)))


def test_a_causal_model_file_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``model.causal`` in a config builds the causal network (`stylehost train --set 'model.causal={}'`,
    tests/diffusion/test_train.py trains one); its model file loads back as the same network; export refuses it
    with the reason instead of a window bundle."""
    from diffusion.checkpoint import build_denoiser, load_denoiser, save_model
    from diffusion.config import apply_overrides, from_dict
    from diffusion.train import TrainConfig
    from export.onnx import export_bundle

    data = apply_overrides({}, ['model.causal={"dilations": [1, 2]}', "model.channels=[8,16]"], TrainConfig)
    cfg = from_dict(TrainConfig, data).model
    assert cfg.causal == CausalConfig(dilations=(1, 2))
    d = build_denoiser(cfg)
    assert isinstance(d, CausalDenoiser)
    with torch.no_grad():
        for p in d.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_model(tmp_path / "causal.pt", d)
    back = load_denoiser(tmp_path / "causal.pt")
    assert isinstance(back, CausalDenoiser) and back.cfg == d.cfg
    x, sigma, src, style = (t.float() for t in inputs(6, cfg))
    with torch.no_grad():
        torch.testing.assert_close(back(x, sigma, src, style), d.eval()(x, sigma, src, style))
    with pytest.raises(StylehostError, match="causal streaming model"):
        export_bundle(tmp_path / "causal.pt", tmp_path / "bundle")


def test_frame_norm_is_a_groupnorm_of_each_frame() -> None:
    from diffusion.causal import frame_norm

    x = torch.randn(2, 16, 8, 5, dtype=torch.float64)
    per_frame = torch.stack([torch.nn.functional.group_norm(x[..., t], 8) for t in range(5)], dim=-1)
    torch.testing.assert_close(frame_norm(x, 8), per_frame, atol=1e-12, rtol=0)
    # one frame (a live call's shape) takes the unfolded path: the same statistics
    torch.testing.assert_close(frame_norm(x[..., :1], 8), per_frame[..., :1], atol=1e-12, rtol=0)


def test_without_the_output_norm_a_frames_level_reaches_the_output() -> None:
    """With the per-frame norm before the output conv, the output is blind to the level of the last hidden
    frames: doubling them changes nothing. Without it (``out_norm=False``, what causal-distill trains) it does."""
    x, sigma, src, style = inputs(6)
    for out_norm in (True, False):
        d = perturbed(causal=CausalConfig(out_norm=out_norm))
        last_block = d.net.up[-1][-1]
        with torch.no_grad():
            base = d(x, sigma, src, style)
            hook = last_block.register_forward_hook(lambda m, a, out: (2 * out[0], *out[1:]))
            doubled = d(x, sigma, src, style)
            hook.remove()
        changed = float((doubled - base).abs().max())
        assert (changed > 1e-3) == (not out_norm), (out_norm, changed)
