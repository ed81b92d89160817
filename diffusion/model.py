"""The style-transfer denoiser: a small 2D conv UNet over (mel, time), wrapped once in EDM preconditioning.

Shapes everywhere: windows are (B, 1, n_mels, T) in the *normalised* log-mel domain
``(logmel - logmel_mean) / logmel_std``; sigma is (B,); the style vector is (B, emb_dim).

Conditioning (FiLM / AdaGN): ``cond = MLP(Fourier(c_noise)) + style_vec`` modulates every residual block
(``GroupNorm(h) * (1 + scale) + shift``). The source window is concatenated as a second input
channel: it carries the content (notes, timing, dynamics); the style vector carries the target
timbre. The network never sees the source's style label, so any sound can be a source. The style
vector is an input, not an index, so the runtime can pass any weighted mix of the table's rows.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from diffusion.errors import StylehostError
from diffusion.features import SpectrogramConfig
from diffusion.styles import STYLE_NAMES, get_style


@dataclass(frozen=True)
class CausalConfig:
    """The time structure of the causal network (diffusion/causal.py); widths and conditioning are ModelConfig's."""

    time_kernel: int = 3
    dilations: tuple[int, ...] = ()  # per UNet level (len == len(ModelConfig.channels)); () = 1, 2, 4, ...
    # A per-frame norm before the output conv removes each frame's level, which the output must then rebuild
    # from the pattern across channels (c_skip is ~0 at sigma_max, so F carries the whole level there). False:
    # the output conv reads the unnormalised residual stream. True keeps the first causal models' network.
    out_norm: bool = True

    def __post_init__(self) -> None:
        if self.time_kernel < 1 or any(d < 1 for d in self.dilations):
            raise StylehostError(f"need time_kernel >= 1 and dilations >= 1, got {self.time_kernel}, "
                                 f"{self.dilations}")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines the network and its input domain; saved in every checkpoint and bundle."""

    spectrogram: SpectrogramConfig = field(default_factory=SpectrogramConfig)
    styles: tuple[str, ...] = STYLE_NAMES
    window: int = 32  # T frames per window (128 ms at hop 4 ms)
    lookahead: int = 2  # L: frames right of the region the engine emits
    emit: int = 4  # frames of the emitted region [T-L-emit, T-L) that the loss weighs up
    # Sized for ONNX Runtime on a 2-core CPU: 1.09 M params, 119 M MACs, ~2.1 ms per call (1 thread).
    channels: tuple[int, ...] = (16, 32, 64, 96)  # per UNet level; each level halves mel and time
    blocks: int = 1  # residual blocks per level (down path; the up path has the same number)
    emb_dim: int = 128  # conditioning vector = style embedding size
    fourier_dim: int = 32
    # Windows the denoiser hears beside x: 1 (the input's log-mel, or its excitation's) or 2 (both, issue 15:
    # the input for what it has, its harmonic excitation for the partials an unseen timbre lacks)
    source_channels: int = 1
    # None: the UNet below. A CausalConfig: the causal streaming network of diffusion/causal.py (issue 17),
    # built by diffusion.checkpoint.build_denoiser
    causal: CausalConfig | None = None
    logmel_mean: float = -4.5  # fixed normalisation of natural-log mel magnitudes (measured on the
    # rendered train split: mean -4.39, std 3.40 over 40 clips x 8 styles x 2 fonts)
    logmel_std: float = 3.5
    sigma_data: float = 1.0
    sigma_min: float = 0.02
    sigma_max: float = 40.0
    rho: float = 7.0

    def __post_init__(self) -> None:
        for name in self.styles:
            get_style(name)
        if len(set(self.styles)) != len(self.styles) or not self.styles:
            raise StylehostError(f"model styles must be distinct and non-empty, got {list(self.styles)}")
        if self.source_channels not in (1, 2):
            raise StylehostError(f"source_channels must be 1 or 2, got {self.source_channels}")
        levels, factor = len(self.channels), self.downsampling
        if self.spectrogram.n_mels % factor or (self.window % factor and self.causal is None):
            raise StylehostError(
                f"n_mels ({self.spectrogram.n_mels}) and window ({self.window}) must be divisible by "
                f"2**(levels-1) = {factor} for {levels} UNet levels"
            )
        if self.lookahead < 0 or self.emit < 1 or self.lookahead + self.emit > self.window:
            raise StylehostError(
                f"need lookahead >= 0, emit >= 1 and lookahead + emit <= window, got "
                f"{self.lookahead}, {self.emit}, {self.window}"
            )

    @property
    def downsampling(self) -> int:
        """The UNet's total downsampling: mel bands and window frames must be multiples of it."""
        return 2 ** (len(self.channels) - 1)

    @property
    def n_mels(self) -> int:
        return self.spectrogram.n_mels

    def style_index(self, name: str) -> int:
        """Row of the embedding table for a style name; StylehostError if the model lacks it."""
        if name not in self.styles:
            get_style(name)  # an unknown name gets the project-wide message
            raise StylehostError(f"this model has no style {name!r}; its styles: {', '.join(self.styles)}")
        return self.styles.index(name)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["styles"] = list(self.styles)
        data["channels"] = list(self.channels)
        if self.causal is not None:
            data["causal"]["dilations"] = list(self.causal.dilations)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - valid
        if unknown:
            raise StylehostError(f"unknown model config keys {sorted(unknown)}; valid: {sorted(valid)}")
        data = dict(data)
        if isinstance(data.get("spectrogram"), dict):
            data["spectrogram"] = SpectrogramConfig.from_dict(data["spectrogram"])
        if isinstance(data.get("causal"), dict):
            data["causal"] = CausalConfig(**{**data["causal"], "dilations": tuple(data["causal"].get("dilations", ()))})
        for key in ("styles", "channels"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def normalize(self, logmel: torch.Tensor) -> torch.Tensor:
        return (logmel - self.logmel_mean) / self.logmel_std

    def heard(self, logmel: torch.Tensor) -> torch.Tensor:
        """What the denoiser hears, normalised: (B, n_mels, T) or (B, C, n_mels, T) -> (B, source_channels,
        n_mels, T). Channel 0 is also where SDEdit starts (the input, or the excitation for a model hearing it)."""
        x = self.normalize(logmel)
        x = x[:, None] if x.ndim == 3 else x
        if x.ndim != 4 or x.shape[1] != self.source_channels or x.shape[2] != self.n_mels:
            want = f"(B, {self.n_mels}, T)" if self.source_channels == 1 else \
                f"(B, {self.source_channels}, {self.n_mels}, T) (it hears the input and its excitation)"
            raise StylehostError(f"source must be {want} for this model, got {tuple(logmel.shape)}")
        return x

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.logmel_std + self.logmel_mean

    def frame_weights(self, emphasis: float) -> torch.Tensor:
        """(T,) loss weights: 1 everywhere, ``emphasis`` on the emitted region [T-L-emit, T-L)."""
        w = torch.ones(self.window)
        w[self.window - self.lookahead - self.emit : self.window - self.lookahead] = emphasis
        return w


class FourierFeatures(nn.Module):
    """Random Fourier features of the scalar c_noise (as k-diffusion's FourierFeatures)."""

    weight: torch.Tensor  # buffer registered in __init__

    def __init__(self, dim: int, std: float = 4.0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)  # fixed, and saved as a buffer anyway
        self.register_buffer("weight", torch.randn(dim // 2, generator=gen) * std)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        f = 2 * math.pi * c[:, None] * self.weight[None, :]
        return torch.cat([f.cos(), f.sin()], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels, affine=False)


class ResBlock(nn.Module):
    """GroupNorm -> AdaGN(cond) -> SiLU -> conv3x3, twice, plus a (1x1 if needed) skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = _norm(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity (stable early training)
        assert self.conv2.bias is not None  # built with the default bias=True
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(nn.functional.silu(h))
        return self.skip(x) + h


class UNet(nn.Module):
    """F(c_in * x, source, c_noise, style_vec) -> raw output; see Denoiser for the EDM wrapping."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch, e = cfg.channels, cfg.emb_dim
        self.fourier = FourierFeatures(cfg.fourier_dim)
        self.noise_mlp = nn.Sequential(nn.Linear(cfg.fourier_dim, e), nn.SiLU(), nn.Linear(e, e))
        self.style_table = nn.Parameter(torch.randn(len(cfg.styles), e) * 0.5)
        self.cond_act = nn.SiLU()
        self.stem = nn.Conv2d(1 + cfg.source_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c_prev = ch[0]
        for i, c in enumerate(ch):
            self.down.append(nn.ModuleList([ResBlock(c_prev if b == 0 else c, c, e) for b in range(cfg.blocks)]))
            c_prev = c
            if i < len(ch) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(ch[-1], ch[-1], e)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(ch))):
            self.up.append(nn.ModuleList([ResBlock(c_prev + ch[i] if b == 0 else ch[i], ch[i], e)
                                          for b in range(cfg.blocks)]))
            c_prev = ch[i]
            if i > 0:
                self.upsample.append(nn.Conv2d(ch[i], ch[i - 1], 3, padding=1))
                c_prev = ch[i - 1]
        self.out_norm = _norm(ch[0])
        self.out = nn.Conv2d(ch[0], 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        assert self.out.bias is not None  # built with the default bias=True
        nn.init.zeros_(self.out.bias)

    def style_vectors(self, weights: torch.Tensor) -> torch.Tensor:
        """(B, n_styles) mixing weights -> (B, emb_dim) style vectors (a weighted sum of table rows)."""
        return weights @ self.style_table

    def forward(
        self, x: torch.Tensor, source: torch.Tensor, c_noise: torch.Tensor, style_vec: torch.Tensor
    ) -> torch.Tensor:
        emb = self.cond_act(self.noise_mlp(self.fourier(c_noise)) + style_vec)
        h = self.stem(torch.cat([x, source], dim=1))
        skips = []
        for i, blocks in enumerate(self.down):
            for block in cast(nn.ModuleList, blocks):  # each level is a ModuleList of ResBlocks
                h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid(h, emb)
        for i, blocks in enumerate(self.up):
            h = torch.cat([h, skips.pop()], dim=1)
            for block in cast(nn.ModuleList, blocks):  # each level is a ModuleList of ResBlocks
                h = block(h, emb)
            if i < len(self.upsample):
                h = self.upsample[i](nn.functional.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(nn.functional.silu(self.out_norm(h)))


class Denoiser(nn.Module):
    """EDM preconditioning (Karras et al. 2022, Table 1) around the UNet: ``(x, sigma, source, style_vec)
    -> x0``. Every sampler, the distillation and the ONNX export use exactly this contract."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = UNet(cfg)

    def style_vectors(self, weights: torch.Tensor) -> torch.Tensor:
        return self.net.style_vectors(weights)

    def style_vector(self, mix: dict[str, float], batch: int = 1) -> torch.Tensor:
        """{'violin': 0.7, 'flute': 0.3} -> (batch, emb_dim); the weights are used as given."""
        w = torch.zeros(len(self.cfg.styles))
        for name, weight in mix.items():
            w[self.cfg.style_index(name)] = float(weight)
        return self.style_vectors(w[None]).expand(batch, -1)

    def play_with_lookahead(self, lookahead: int | None) -> Denoiser:
        """Emit ``lookahead`` frames before the window's right edge instead of the trained ``cfg.lookahead``
        (in place; None keeps it). The window network reads every column the same way whatever is emitted, so
        fewer look-ahead frames is a latency choice (one hop each) whose cost `stylehost eval --lookahead`
        measures. A causal network's look-ahead is built into its training offset: refused."""
        if lookahead is None or lookahead == self.cfg.lookahead:
            return self
        if self.cfg.causal is not None:
            raise StylehostError(f"a causal model's look-ahead ({self.cfg.lookahead}) is fixed by its training")
        if not 0 <= lookahead < self.cfg.lookahead:
            raise StylehostError(f"lookahead must be in 0..{self.cfg.lookahead - 1} (fewer frames than the model "
                                 f"was trained with), got {lookahead}")
        self.cfg = dataclasses.replace(self.cfg, lookahead=lookahead)
        return self

    def play_with_window(self, window: int | None) -> Denoiser:
        """Read ``window`` frames per call instead of the trained ``cfg.window`` (in place; None keeps it).
        The network is convolutional, so a shorter window is a compute choice (a call costs about its
        length) whose cost in quality `stylehost eval --window` measures: the columns near the window's
        left edge see less context, and the norms' statistics cover fewer frames. Only shorter, and still
        divisible by the UNet's downsampling factor; a causal network has no window: refused."""
        if window is None:
            return self
        if self.cfg.causal is not None:
            raise StylehostError("a causal model carries its state instead of reading a window")
        if window == self.cfg.window:
            return self
        factor = self.cfg.downsampling
        low = self.cfg.lookahead + self.cfg.emit
        if not low <= window < self.cfg.window or window % factor:
            raise StylehostError(f"window must be a multiple of {factor} in {low}..{self.cfg.window - 1} (shorter "
                                 f"than the model was trained with), got {window}")
        self.cfg = dataclasses.replace(self.cfg, window=window)
        return self

    def precondition(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """c_skip, c_out, c_in (each (B, 1, 1, 1)) and c_noise (B,)."""
        sd = self.cfg.sigma_data
        s = sigma.reshape(-1, 1, 1, 1)
        c_skip = sd**2 / (s**2 + sd**2)
        c_out = s * sd / torch.sqrt(s**2 + sd**2)
        c_in = 1 / torch.sqrt(s**2 + sd**2)
        return c_skip, c_out, c_in, torch.log(sigma.reshape(-1)) / 4

    def forward(
        self, x: torch.Tensor, sigma: torch.Tensor, source: torch.Tensor, style_vec: torch.Tensor
    ) -> torch.Tensor:
        # sigma is (B,) or (1,); (1,) broadcasts over the batch without a data-dependent branch.
        c_skip, c_out, c_in, c_noise = self.precondition(sigma)
        return c_skip * x + c_out * self.net(c_in * x, source, c_noise, style_vec)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(denoiser: Denoiser, batch: int = 1) -> int:
    """Multiply-accumulates of one denoiser call on ``batch`` windows (torch's FLOP counter / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = denoiser.cfg
    x = torch.zeros(batch, 1, cfg.n_mels, cfg.window)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        source = torch.zeros(batch, cfg.source_channels, cfg.n_mels, cfg.window)
        denoiser(x, torch.ones(batch), source, torch.zeros(batch, cfg.emb_dim))
    return counter.get_total_flops() // 2
