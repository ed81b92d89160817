"""GuideDiff-style learned spectrogram-to-audio restoration, guided by the live source (issue 8).

Huang et al. 2024 restore audio from the restyled spectrogram with a fast diffusion model (GuideDiff).
Here the restoration runs on the complex STFT of each output frame, and is a *restoration* diffusion
in the InDI style (Delbracio & Milanfar 2023, "Inversion by Direct Iteration", TMLR): the state
``x_t`` moves from the degraded input (t = 1) to the clean signal (t = 0), the network predicts the
clean end ``F(x_t, t)`` and one sampling step is ``x_{t-d} = (d/t) F(x_t, t) + (1 - d/t) x_t``
(their eq. 7). The degraded input is what the first path already makes: the source's own STFT with
each bin scaled by the mel-band gain ``pred - source`` (``PhaseGuidedResynth``, clamped +-30 dB).
One or two steps are all the budget allows, so the network is trained only at the times those
samplers visit (t = 1 and t = 1/2), which is InDI's few-step regime without a separate distillation.

Why not interpolate towards the true target's STFT, as InDI does for images: the target rendering
is the same notes played by another instrument, so its phase is not aligned with the source's and
cannot be predicted; a complex interpolation between the two would cancel. The clean end of the
t = 1/2 state is therefore the network's own (detached) first-step estimate, exactly the state the
2-step sampler sees, and the loss is a multi-resolution STFT loss (spectral convergence +
log-magnitude, Yamamoto et al. 2020, Parallel WaveGAN) on the overlap-added waveform against the
true target waveform: magnitudes at several resolutions, which judge phase only through how the
frames add up. See ``guide_train.py`` for the recipe and docs/guidediff.md for the results.

Network (``GuideNet``, ~30 k parameters at the defaults): per output frame, a conv over frequency
whose first layer also spans ``context`` earlier and ``lookahead`` later frames (valid in time), on
per-bin features of the state (log-magnitude, phase as cos/sin) and of the guidance (the predicted
log-mel spread onto bins, the source's log-magnitude). It outputs a log-gain and a phase rotation of
the state plus an additive complex residual scaled by the predicted level (for energy the source
lacks); its last layer starts at zero, so an untrained stage is exactly source-phase iSTFT.

Latency: a ``steps``-step stage reads ``steps * context`` frames before the emitted ones and
``steps * lookahead`` after them. The model window already holds 26 earlier frames and the 2
look-ahead frames, so with ``steps * lookahead <= 2`` the stage adds no latency at all.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffusion.checkpoint import load_checkpoint, save_checkpoint
from diffusion.config import from_dict
from diffusion.errors import StylehostError
from diffusion.features import SpectrogramConfig, SpectrogramTransform

LOG_MEAN, LOG_STD = -4.5, 3.5  # the model's log-mel normalisation, reused for log-magnitudes


@dataclass(frozen=True)
class GuideConfig:
    """Architecture of the restoration network (saved in every stage file)."""

    channels: int = 32
    blocks: int = 4
    kernel: int = 5  # over frequency bins
    context: int = 2  # earlier frames one step reads
    lookahead: int = 1  # later frames one step reads
    max_gain_db: float = 30.0  # clamp of the source-phase start (as PhaseGuidedResynth)
    max_log_gain: float = 4.0  # bound of the network's own log-gain correction (natural log, ~35 dB)


class GuideNet(nn.Module):
    """One restoration step F(x_t, t): (B, 2, F, N) state + (B, 2, F, N) guidance -> (B, 2, F, N - C - L').

    Channels of the state: real, imaginary; of the guidance: predicted log-level per bin, source
    log-magnitude per bin (both natural log). Output: the clean estimate of frames [C, N - L').
    """

    def __init__(self, cfg: GuideConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h, k = cfg.channels, cfg.kernel
        self.inp = nn.Conv2d(6, h, (k, cfg.context + 1 + cfg.lookahead), padding=(k // 2, 0))
        self.blocks = nn.ModuleList(
            nn.Conv2d(h, h, (k, 1), padding=(k // 2 * 2**i, 0), dilation=(2**i, 1)) for i in range(cfg.blocks)
        )
        self.out = nn.Conv2d(h, 4, 1)
        nn.init.zeros_(self.out.weight)
        assert self.out.bias is not None  # built with the default bias=True
        nn.init.zeros_(self.out.bias)

    def forward(self, re: torch.Tensor, im: torch.Tensor, t: float, level: torch.Tensor,
                source_logmag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """re, im, level, source_logmag: (B, F, N) -> clean (re, im), each (B, F, N - C - L')."""
        c, la = self.cfg.context, self.cfg.lookahead
        mag = torch.sqrt(re * re + im * im + 1e-12)
        feats = torch.stack([
            (torch.log(mag + 1e-5) - LOG_MEAN) / LOG_STD, re / mag, im / mag,
            (level - LOG_MEAN) / LOG_STD, (source_logmag - LOG_MEAN) / LOG_STD,
            torch.full_like(re, t),
        ], dim=1)
        h = nn.functional.gelu(self.inp(feats))
        for block in self.blocks:
            h = h + nn.functional.gelu(block(h))
        o = self.out(h)
        n = re.shape[2]
        rc, ic, lc = re[:, :, c : n - la], im[:, :, c : n - la], level[:, :, c : n - la]
        bound = self.cfg.max_log_gain
        gain = torch.exp(bound * torch.tanh(o[:, 0] / bound))
        cos, sin = torch.cos(o[:, 1]), torch.sin(o[:, 1])
        scale = 0.1 * torch.exp(torch.clamp(lc, max=6.0))  # ~ a bin's magnitude (a mel band sums several bins)
        out_re = gain * (rc * cos - ic * sin) + scale * o[:, 2]
        out_im = gain * (rc * sin + ic * cos) + scale * o[:, 3]
        return out_re, out_im


def adapted_state(have: GuideConfig, state: dict[str, torch.Tensor], want: GuideConfig) -> dict[str, torch.Tensor]:
    """A trained net's weights for a net of config ``want`` (fine-tuning start, guide-train ``init``).

    Configs that differ only in ``context`` or ``lookahead`` keep every weight but the first layer's time taps:
    the taps of the frames both read (aligned on the emitted frame) are copied, a new tap starts at zero. So
    a stage whose look-ahead is dropped (issue 17, -1 frame of latency) starts from what the old one learned.
    """
    same = dataclasses.replace(want, context=have.context, lookahead=have.lookahead)
    if same != have:
        raise StylehostError(f"init stage has another guide config: {have}; only context and lookahead may differ")
    out = dict(state)
    old = state["inp.weight"]  # (h, 6, k, have.context + 1 + have.lookahead)
    new = torch.zeros(*old.shape[:3], want.context + 1 + want.lookahead, dtype=old.dtype)
    for j in range(-min(have.context, want.context), min(have.lookahead, want.lookahead) + 1):
        new[..., want.context + j] = old[..., have.context + j]  # audit: stage-taps-aligned
    out["inp.weight"] = new
    return out


class GuideStage(nn.Module):
    """(B, N, n_fft) source frames + (B, n_mels, N) predicted log-mel -> (B, N - before - after, n_fft).

    The output frames are synthesis-windowed (as ``FrameResynth``'s), ready to overlap-add at hop
    spacing; they are frames [before, N - after) of the input, ``before = steps * context`` and
    ``after = steps * lookahead``. ``steps = 0`` is the start itself: source-phase iSTFT.
    Every frame's result depends only on its own [j - before, j + after] inputs, so a clip can be
    restored whole or window by window with the same numbers.
    """

    analysis: torch.Tensor
    feature_analysis: torch.Tensor
    synthesis: torch.Tensor
    mel_fb: torch.Tensor
    mel_to_lin: torch.Tensor

    def __init__(self, spec: SpectrogramConfig, cfg: GuideConfig = GuideConfig(), steps: int = 1) -> None:
        super().__init__()
        if steps < 0:
            raise StylehostError(f"guide steps must be >= 0, got {steps}")
        self.spec, self.cfg, self.steps = spec, cfg, steps
        self.net = GuideNet(cfg)
        transform = SpectrogramTransform(spec)
        f = spec.n_freqs
        # Per-frame DFT as matmuls: (.., n_fft) @ (n_fft, 2F) and back (2F, n_fft) (synthesis-windowed).
        self.register_buffer("analysis", transform.analysis[:, 0, :].T.contiguous(), persistent=False)
        # The log-mel features' window (SpectrogramConfig.synthesis_len: Hann beside a low-delay pair).
        self.paired_features = transform.paired_features
        self.register_buffer("feature_analysis", transform.feature_analysis[:, 0, :].T.contiguous(),
                             persistent=False)
        self.register_buffer("synthesis", transform.synthesis[:, 0, :].contiguous(), persistent=False)
        self.register_buffer("mel_fb", transform.mel_fb, persistent=False)
        self.register_buffer("mel_to_lin", transform.mel_to_lin, persistent=False)
        self.n_freqs = f
        self.max_log_gain = cfg.max_gain_db * math.log(10.0) / 20.0

    @property
    def before(self) -> int:
        return self.steps * self.cfg.context

    @property
    def after(self) -> int:
        return self.steps * self.cfg.lookahead

    def start(self, frames: torch.Tensor, pred_logmel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Source-phase start x_1 (re, im), predicted level per bin, source log-magnitude; each (B, F, N)."""
        spec = torch.matmul(frames, self.analysis).transpose(1, 2)  # (B, 2F, N)
        re, im = spec[:, : self.n_freqs], spec[:, self.n_freqs :]
        mag = torch.sqrt(re * re + im * im + 1e-20)
        source_logmel = self._logmel(mag) if self.paired_features else self.feature_logmel(frames)
        gain = torch.matmul(self.mel_to_lin, pred_logmel - source_logmel)
        gain = torch.exp(torch.clamp(gain, -self.max_log_gain, self.max_log_gain))
        level = torch.matmul(self.mel_to_lin, pred_logmel)
        return re * gain, im * gain, level, torch.log(mag + 1e-5)

    def feature_logmel(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, N, n_fft) frames -> (B, n_mels, N) log-mel with the features' window (what the denoiser hears)."""
        spec = torch.matmul(frames, self.feature_analysis).transpose(1, 2)
        re, im = spec[:, : self.n_freqs], spec[:, self.n_freqs :]
        return self._logmel(torch.sqrt(re * re + im * im + 1e-20))

    def _logmel(self, mag: torch.Tensor) -> torch.Tensor:
        """(B, F, N) magnitude -> (B, n_mels, N) natural-log mel."""
        return torch.log(torch.clamp(torch.matmul(self.mel_fb, mag), min=self.spec.log_floor))

    def restore(self, frames: torch.Tensor, pred_logmel: torch.Tensor, steps: int | None = None,
                keep: list | None = None, detach_states: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """InDI sampling from t = 1 in ``steps`` uniform steps; (re, im) of frames [before, N - after).

        ``keep`` (training) collects every step's clean estimate; ``detach_states`` builds the next
        state from the detached estimate (guide_train.py).
        """
        steps = self.steps if steps is None else steps
        re, im, level, slog = self.start(frames, pred_logmel)
        c, la = self.cfg.context, self.cfg.lookahead
        for i in range(steps):
            t, d = 1.0 - i / steps, 1.0 / steps
            n = re.shape[2]
            cre, cim = self.net(re, im, t, level, slog)
            if keep is not None:
                keep.append((cre, cim))
            level, slog = level[:, :, c : n - la], slog[:, :, c : n - la]
            re, im = re[:, :, c : n - la], im[:, :, c : n - la]
            if detach_states:
                cre, cim = cre.detach(), cim.detach()
            if i == steps - 1:
                re, im = cre, cim
            else:  # x_{t-d} = (d/t) F + (1 - d/t) x_t   (Delbracio & Milanfar 2023, eq. 7)
                a = d / t
                re, im = a * cre + (1 - a) * re, a * cim + (1 - a) * im
        return re, im

    def synthesize(self, re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
        """(B, F, M) x2 -> (B, M, n_fft) synthesis-windowed frames."""
        return torch.matmul(torch.cat([re, im], dim=1).transpose(1, 2), self.synthesis)

    def forward(self, frames: torch.Tensor, pred_logmel: torch.Tensor) -> torch.Tensor:
        return self.synthesize(*self.restore(frames, pred_logmel))


# ---- whole-clip helpers (training, offline reference) ------------------------------------------------


def frames_of(wave: torch.Tensor, spec: SpectrogramConfig) -> torch.Tensor:
    """(B, samples) -> (B, num_frames, n_fft): frame j is samples [j*hop, j*hop + n_fft)."""
    return wave.unfold(-1, spec.n_fft, spec.hop)


def overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """(B, M, n_fft) synthesis-windowed frames -> (B, (M-1)*hop + n_fft) waveform.

    A transposed convolution with an identity kernel (ONNX opset 17 has no col2im for ``fold``).
    """
    n = frames.shape[-1]
    eye = torch.eye(n, dtype=frames.dtype, device=frames.device)[:, None, :]
    return nn.functional.conv_transpose1d(frames.transpose(1, 2), eye, stride=hop)[:, 0]


def restore_clip(stage: GuideStage, wave: torch.Tensor, logmel: torch.Tensor) -> torch.Tensor:
    """Whole clip (B, samples) + its (B, n_mels, frames) log-mel -> (B, samples) restored audio, aligned.

    Frames outside the clip are zero audio and the log floor, as before the first frame of a stream.
    """
    spec = stage.spec
    b, samples = wave.shape
    frames = spec.num_frames(samples)
    lb, la = stage.before, stage.after
    pad = torch.zeros(b, lb * spec.hop, dtype=wave.dtype)
    padded = torch.cat([pad, wave[:, : spec.num_samples(frames)], torch.zeros(b, la * spec.hop)], dim=1)
    floor = math.log(spec.log_floor)
    mel = torch.cat([torch.full((b, spec.n_mels, lb), floor), logmel[:, :, :frames],
                     torch.full((b, spec.n_mels, la), floor)], dim=2)
    out = overlap_add(stage(frames_of(padded, spec), mel), spec.hop)
    result = torch.zeros(b, samples)
    result[:, : out.shape[1]] = out
    return result


def restore_windows(stage: GuideStage, wave: torch.Tensor, contexts: torch.Tensor, emit: int) -> torch.Tensor:
    """Offline twin of the live engine with the stage: (samples,) clip + (W, n_mels, before+emit+after)
    per-window predicted log-mel (``stream.stream_contexts``) -> (samples,) audio, aligned.

    Window w restores frames [w*emit, (w+1)*emit) from source frames [w*emit - before, (w+1)*emit + after)
    (zero audio outside the clip) and its own context columns; frames past the clip are dropped.
    """
    spec = stage.spec
    samples = wave.shape[-1]
    count, lb, la = contexts.shape[0], stage.before, stage.after
    total = count * emit + lb + la  # frames from -before to count*emit + after
    padded = torch.zeros(spec.num_samples(total))
    used = min(samples, len(padded) - lb * spec.hop)
    padded[lb * spec.hop : lb * spec.hop + used] = wave[:used]
    frames = frames_of(padded[None], spec)[0]
    index = torch.arange(count)[:, None] * emit + torch.arange(lb + emit + la)[None]
    out = stage(frames[index], contexts)  # (W, emit, n_fft)
    kept = out.reshape(1, -1, spec.n_fft)[:, : spec.num_frames(samples)]
    audio = overlap_add(kept, spec.hop)[0]
    result = torch.zeros(samples)
    result[: min(samples, audio.shape[0])] = audio[:samples]
    return result


# ---- stage files --------------------------------------------------------------------------------------


def save_stage(path: Path, stage: GuideStage, meta: dict[str, Any] | None = None) -> None:
    """The stage's inference file: weights, config, spectrogram config (plus JSON-able ``meta``)."""
    save_checkpoint(path, {"kind": "guide", "model_config": {**dataclasses.asdict(stage.cfg),
                                                              "spectrogram": stage.spec.to_dict()},
                           "model": stage.net.state_dict(), "meta": meta or {}})


def load_stage(path: Path, steps: int = 1, use_ema: bool = True) -> GuideStage:
    """A GuideStage from a stage file or a guide-train checkpoint (EMA weights by default)."""
    ckpt = load_checkpoint(path)
    if ckpt.get("kind") not in ("guide", "guide-checkpoint"):
        raise StylehostError(f"{path} is not a guide stage file (kind {ckpt.get('kind')!r}); "
                             "train one with `stylehost guide-train`")
    conf = dict(ckpt["model_config"])
    spec = SpectrogramConfig.from_dict(conf.pop("spectrogram"))
    stage = GuideStage(spec, from_dict(GuideConfig, conf), steps)
    state = ckpt["ema"] if use_ema and "ema" in ckpt else ckpt["model"]
    try:
        stage.net.load_state_dict(state)
    except RuntimeError as exc:
        raise StylehostError(f"{path} does not match its own guide config: {exc}") from exc
    return stage.eval()


def parameter_count(stage: GuideStage) -> int:
    return sum(p.numel() for p in stage.net.parameters())
