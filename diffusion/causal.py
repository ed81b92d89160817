"""A causal, streaming denoiser (issue 17): each frame computed once, its convolutions' state carried between calls.

Today's UNet (diffusion/model.py) halves time at every level and normalises over the whole window, so a live
call must re-run it over 32 frames to emit 2: about 15/16 of the work is repeated. This network keeps time at
full rate and looks only backwards in it:

- time convolutions are causal (kernel ``time_kernel``, dilation doubling per level, as a TCN), with the
  receptive field the dilations give (``receptive_field``); mel is halved and doubled as in the UNet, by
  convolutions that do not look along time;
- every GroupNorm normalises one frame (over channels and mel), never across frames;
- each time convolution keeps the last ``(k - 1) * dilation`` frames of its input as *state*: called on n new
  frames with its state, it returns exactly the n frames the whole-sequence pass would have (tested), so a
  live call costs n frames' work. ``init_state`` is the silence before the first frame (zeros).

The EDM preconditioning, the style table and the conditioning are the UNet's (``Denoiser``): sigma and the
style vector are per call, which for 1-step consistency sampling is what the engine has. Look-ahead is a
training choice, not a network one: a model trained to emit target frame j - L when input frame j arrives
hears L frames after the one it emits, at L hops of latency.

Shapes: x, source (B, 1 | source_channels, n_mels, n) for n new frames; state a list of tensors, one per time
convolution, (B, C, M, (k - 1) * dilation) each.
"""

from __future__ import annotations

import dataclasses
from typing import cast

import torch
from torch import nn

from diffusion.errors import StylehostError
from diffusion.model import CausalConfig, Denoiser, FourierFeatures, ModelConfig

State = list[torch.Tensor]


def frame_norm(x: torch.Tensor, groups: int, eps: float = 1e-5) -> torch.Tensor:
    """GroupNorm of each frame on its own (over channels in a group and mel), so no frame hears a later one:
    time folded into the batch, then one GroupNorm (one fused InstanceNormalization in ONNX Runtime, faster
    per call than the same statistics spelled out in reductions: benchmarks/causal_ms)."""
    b, c, m, t = x.shape
    if t == 1:  # one frame (a live call): its norm is the tensor's own, no fold (4 fewer ops per norm in ONNX)
        return nn.functional.group_norm(x, groups, eps=eps)
    y = nn.functional.group_norm(x.permute(0, 3, 1, 2).reshape(b * t, c, m), groups, eps=eps)
    return y.reshape(b, t, c, m).permute(0, 2, 3, 1)


class CausalConv(nn.Module):
    """Conv2d over (mel, time), 'same' along mel and causal along time, with its input tail as state."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, mel_kernel: int = 3) -> None:
        super().__init__()
        self.c_in, self.context = c_in, (kernel - 1) * dilation
        self.conv = nn.Conv2d(c_in, c_out, (mel_kernel, kernel), padding=(mel_kernel // 2, 0),
                              dilation=(1, dilation))

    def zero_state(self, batch: int, mels: int) -> torch.Tensor:
        return torch.zeros(batch, self.c_in, mels, self.context)

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x: n new frames, state: the previous ``context`` frames) -> (n output frames, the new state)."""
        full = torch.cat([state, x], dim=-1)
        return self.conv(full), full[..., full.shape[-1] - self.context :]


class CausalBlock(nn.Module):
    """The UNet's ResBlock with per-frame norms and causal time convolutions (two states)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.groups_in, self.groups_out = min(8, c_in), min(8, c_out)
        self.conv1 = CausalConv(c_in, c_out, kernel, dilation)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.conv2 = CausalConv(c_out, c_out, kernel, dilation)
        nn.init.zeros_(self.conv2.conv.weight)  # each block starts as the identity, as the UNet's
        assert self.conv2.conv.bias is not None
        nn.init.zeros_(self.conv2.conv.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def convs(self) -> tuple[CausalConv, CausalConv]:
        return self.conv1, self.conv2

    def film_of(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gain = 1 + scale, shift), each (B, c_out, 1, 1): the block's FiLM, a function of sigma and style only."""
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        return 1 + scale, shift

    def forward(self, x: torch.Tensor, gain: torch.Tensor, shift: torch.Tensor, s1: torch.Tensor,
                s2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x and the two time convolutions' states, with this block's FiLM (``film_of``) given."""
        h, s1 = self.conv1(nn.functional.silu(frame_norm(x, self.groups_in)), s1)
        h = frame_norm(h, self.groups_out) * gain + shift
        h, s2 = self.conv2(nn.functional.silu(h), s2)
        return self.skip(x) + h, s1, s2


class CausalUNet(nn.Module):
    """F(c_in * x, source, c_noise, style_vec, state) -> (raw output, state); the UNet's levels, time at full rate."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        causal = cfg.causal or CausalConfig()
        dilations = causal.dilations or tuple(2**i for i in range(len(cfg.channels)))
        if len(dilations) != len(cfg.channels):
            raise StylehostError(f"one dilation per level: {len(cfg.channels)} levels, got {causal.dilations}")
        self.cfg = cfg
        ch, e, k = cfg.channels, cfg.emb_dim, causal.time_kernel
        self.fourier = FourierFeatures(cfg.fourier_dim)
        self.noise_mlp = nn.Sequential(nn.Linear(cfg.fourier_dim, e), nn.SiLU(), nn.Linear(e, e))
        self.style_table = nn.Parameter(torch.randn(len(cfg.styles), e) * 0.5)
        self.stem = CausalConv(1 + cfg.source_channels, ch[0], k, 1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c_prev = ch[0]
        for i, c in enumerate(ch):
            d = dilations[i]
            self.down.append(nn.ModuleList([CausalBlock(c_prev if b == 0 else c, c, e, k, d)
                                            for b in range(cfg.blocks)]))
            c_prev = c
            if i < len(ch) - 1:  # halve mel only: a frame stays a frame
                self.downsample.append(nn.Conv2d(c, c, (3, 1), stride=(2, 1), padding=(1, 0)))
        self.mid = CausalBlock(ch[-1], ch[-1], e, k, dilations[-1])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(ch))):
            d = dilations[i]
            self.up.append(nn.ModuleList([CausalBlock(c_prev + ch[i] if b == 0 else ch[i], ch[i], e, k, d)
                                          for b in range(cfg.blocks)]))
            c_prev = ch[i]
            if i > 0:
                self.upsample.append(nn.Conv2d(ch[i], ch[i - 1], (3, 1), padding=(1, 0)))
                c_prev = ch[i - 1]
        self.out_groups, self.out_norm = min(8, ch[0]), causal.out_norm
        self.out = CausalConv(ch[0], 1, k, 1)
        nn.init.zeros_(self.out.conv.weight)
        assert self.out.conv.bias is not None
        nn.init.zeros_(self.out.conv.bias)

    def style_vectors(self, weights: torch.Tensor) -> torch.Tensor:
        """(B, n_styles) mixing weights -> (B, emb_dim), as the UNet's."""
        return weights @ self.style_table

    def time_convs(self) -> list[tuple[CausalConv, int]]:
        """(conv, mel bins it sees) in state order: the stem, two per block, the output conv."""
        mels = self.cfg.n_mels
        out: list[tuple[CausalConv, int]] = [(self.stem, mels)]
        levels = len(self.cfg.channels)
        per_level = [mels // 2**i for i in range(levels)]
        for i, level in enumerate(_levels(self.down)):
            out += [(c, per_level[i]) for b in level for c in b.convs()]
        out += [(c, per_level[-1]) for c in self.mid.convs()]
        for j, level in enumerate(_levels(self.up)):
            out += [(c, per_level[levels - 1 - j]) for b in level for c in b.convs()]
        return out + [(self.out, mels)]

    def init_state(self, batch: int = 1) -> State:
        """Zeros: the state after silence, before the first frame."""
        return [conv.zero_state(batch, mels) for conv, mels in self.time_convs()]

    @property
    def receptive_field(self) -> int:
        """Frames of input (the newest included) that one output frame depends on."""
        return 1 + sum(conv.context for conv, _ in self.time_convs())

    def blocks(self) -> list[CausalBlock]:
        """Every block in the order ``forward`` runs them: down levels, mid, up levels (the FiLM order)."""
        return [b for level in _levels(self.down) for b in level] + [self.mid] + [
            b for level in _levels(self.up) for b in level]

    def conditioning(self, c_noise: torch.Tensor, style_vec: torch.Tensor) -> list[torch.Tensor]:
        """Every block's (gain, shift), flat in ``blocks`` order: all the network computes from sigma and style,
        so a live stream computes it once per style and schedule, not once per frame (export/streaming.py)."""
        emb = nn.functional.silu(self.noise_mlp(self.fourier(c_noise)) + style_vec)
        return [t for block in self.blocks() for t in block.film_of(emb)]

    def forward(self, x: torch.Tensor, source: torch.Tensor, c_noise: torch.Tensor, style_vec: torch.Tensor,
                state: State) -> tuple[torch.Tensor, State]:
        return self.forward_conditioned(x, source, self.conditioning(c_noise, style_vec), state)

    def forward_conditioned(self, x: torch.Tensor, source: torch.Tensor, film: list[torch.Tensor], state: State
                            ) -> tuple[torch.Tensor, State]:
        """``forward`` with the blocks' FiLM given (``conditioning``'s list)."""
        it, films = iter(state), iter(film)
        new: State = []
        h, s = self.stem(torch.cat([x, source], dim=1), next(it))
        new.append(s)
        skips = []
        for i, level in enumerate(_levels(self.down)):
            for block in level:
                h, s1, s2 = block(h, next(films), next(films), next(it), next(it))
                new += [s1, s2]
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h, s1, s2 = self.mid(h, next(films), next(films), next(it), next(it))
        new += [s1, s2]
        for i, level in enumerate(_levels(self.up)):
            h = torch.cat([h, skips.pop()], dim=1)
            for block in level:
                h, s1, s2 = block(h, next(films), next(films), next(it), next(it))
                new += [s1, s2]
            if i < len(self.upsample):
                h = self.upsample[i](nn.functional.interpolate(h, scale_factor=(2.0, 1.0), mode="nearest"))
        h = frame_norm(h, self.out_groups) if self.out_norm else h
        h, s = self.out(nn.functional.silu(h), next(it))
        new.append(s)
        return h, new


def _levels(modules: nn.ModuleList) -> list[list[CausalBlock]]:
    """The blocks of each level, typed (a ModuleList of ModuleLists of CausalBlocks)."""
    return [[cast(CausalBlock, b) for b in cast(nn.ModuleList, level)] for level in modules]


class CausalDenoiser(Denoiser):
    """``Denoiser``'s EDM contract, ``(x, sigma, source, style_vec) -> x0``, on the causal network; ``step``
    is the same with the state in and out, for n new frames per call."""

    def __init__(self, cfg: ModelConfig, causal: CausalConfig | None = None) -> None:
        """``causal`` defaults to ``cfg.causal`` (or the default CausalConfig); the model config saved with the
        weights always names it, so a model file rebuilds the same network."""
        nn.Module.__init__(self)
        self.cfg = dataclasses.replace(cfg, causal=causal or cfg.causal or CausalConfig())
        self.net: CausalUNet = CausalUNet(self.cfg)  # type: ignore[assignment]

    def init_state(self, batch: int = 1) -> State:
        return self.net.init_state(batch)

    def step(self, x: torch.Tensor, sigma: torch.Tensor, source: torch.Tensor, style_vec: torch.Tensor,
             state: State) -> tuple[torch.Tensor, State]:
        """n new frames with the state of all earlier ones -> (their x0, the new state)."""
        return self.step_conditioned(x, source, self.condition(sigma, style_vec), state)

    def condition(self, sigma: torch.Tensor, style_vec: torch.Tensor) -> list[torch.Tensor]:
        """[c_skip, c_out, c_in, then every block's gain and shift]: what ``step`` computes from sigma and style."""
        c_skip, c_out, c_in, c_noise = self.precondition(sigma)
        return [c_skip, c_out, c_in, *self.net.conditioning(c_noise, style_vec)]

    def step_conditioned(self, x: torch.Tensor, source: torch.Tensor, cond: list[torch.Tensor], state: State
                         ) -> tuple[torch.Tensor, State]:
        """``step`` with ``condition``'s list given."""
        c_skip, c_out, c_in, *film = cond
        raw, state = self.net.forward_conditioned(c_in * x, source, film, state)
        return c_skip * x + c_out * raw, state

    def condition_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape without the batch) of each ``condition`` tensor, in order: the condition graph's outputs."""
        out: list[tuple[str, tuple[int, ...]]] = [("c_skip", (1, 1, 1)), ("c_out", (1, 1, 1)), ("c_in", (1, 1, 1))]
        for i, block in enumerate(self.net.blocks()):
            c = block.film.out_features // 2
            out += [(f"gain_{i}", (c, 1, 1)), (f"shift_{i}", (c, 1, 1))]
        return out

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, source: torch.Tensor, style_vec: torch.Tensor
                ) -> torch.Tensor:
        """A whole sequence from silence (what training sees): ``step`` from ``init_state``."""
        return self.step(x, sigma, source, style_vec, self.init_state(x.shape[0]))[0]


def frame_macs(d: CausalDenoiser) -> int:
    """Multiply-accumulates of one streamed frame (torch's FLOP counter / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = d.cfg
    x = torch.zeros(1, 1, cfg.n_mels, 1)
    source = torch.zeros(1, cfg.source_channels, cfg.n_mels, 1)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        d.step(x, torch.ones(1), source, torch.zeros(1, cfg.emb_dim), d.init_state())
    return int(counter.get_total_flops() // 2)


if __name__ == "__main__":  # python -m diffusion.causal: the cost figures of docs/live.md
    from diffusion.model import count_macs, parameter_count

    shipped = ModelConfig()
    causal_net, unet = CausalDenoiser(shipped), Denoiser(shipped)
    hop_ms = 1000.0 * shipped.spectrogram.hop / shipped.spectrogram.sample_rate
    print(f"causal: {parameter_count(causal_net):,} params, {frame_macs(causal_net):,} MACs per frame, receptive "
          f"field {causal_net.net.receptive_field} frames ({causal_net.net.receptive_field * hop_ms:.0f} ms)")
    print(f"unet:   {parameter_count(unet):,} params, {count_macs(unet):,} MACs per call ({shipped.window} frames)")
