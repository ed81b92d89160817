"""`stylehost causal-distill`: a causal streaming student (diffusion/causal.py) regressed onto a windowed model.

Why regression: a windowed model (a UNet) already *is* a function f(x_sigma, sigma, source, style) -> x0 that a
sampler calls, so the causal network learns that function directly, frame by frame:

    x = start + sigma * z          (start: the source, as SDEdit feeds it, or the target; z per frame)
    loss = || f_causal(x, sigma) - f_shipped(x, sigma) ||^2   on frames [loss_from, frames)

one no-grad UNet call per group of the shipped student's ``emit`` frames (its window ends ``lookahead``
frames after the group, exactly as the offline reference and the live processor call it), one causal pass
over the whole training window. Every sigma of the ramp is trained (a share ``p_top`` at the top one, what
strength 1 starts from), so the student keeps the strength and steps controls.

Which windowed model (``--shipped``): at strength 1 the consistency student's f depends strongly on the noise
(`python -m benchmarks.noise_spread models/default/model.pt`: two seeds differ by 6.33 dB mean |log-mel| on 32
val windows, 8.31 and 6.79 dB from the target), and regressing onto it left a causal student 7.3 dB from it and
10.5 dB from the target after 750 steps (run folder runs/causal-from-student, its validation). The teacher's
denoiser x0 at sigma_max is close to its conditional mean (1-step DDIM; the same command on
models/teacher/model.pt: seeds 1.93 dB apart, 6.46 and 6.35 dB from the target), a target that hardly depends
on the noise. The student then samples as the model it copies (its sampler).

Frames: the causal network hears source frame t + L and x frame t at its step t, and emits x0 of frame t:
L = ``lookahead`` frames of look-ahead, L hops of latency. Its first ``loss_from`` frames only warm up the
state: a live stream has heard every earlier frame, a training window starts from zeros.

Run folder as distillation's: ``checkpoint.pt``, ``model.pt`` (inference EMA + meta, sampler consistency),
``config.json``, ``loss.png``; re-running the same command resumes.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffusion.augment import AugmentConfig
from diffusion.causal import CausalDenoiser
from diffusion.checkpoint import (
    check_model_config,
    load_checkpoint,
    load_denoiser,
    model_sampler,
    save_checkpoint,
    save_model,
)
from diffusion.config import load_config, to_dict
from diffusion.distill import _ramp, file_sha256
from diffusion.errors import StylehostError
from diffusion.model import CausalConfig, Denoiser, ModelConfig
from diffusion.pairs import fixed_windows
from diffusion.provenance import Provenance
from diffusion.synth_augment import SynthAugmentConfig
from diffusion.train import (
    DB_PER_NEPER,
    add_run_arguments,
    batch_loader,
    load_pairs,
    plot_history,
    run_loop,
    setup_distributed,
)

METHOD = "causal student regressed onto a windowed model's x0 (per-frame targets from its windows)"


@dataclass(frozen=True)
class CausalDistillConfig:
    """The recipe; saved in every checkpoint. The student's widths and conditioning are the shipped student's."""

    causal: CausalConfig = field(default_factory=lambda: CausalConfig(dilations=(1, 1, 1, 1), out_norm=False))
    lookahead: int = 1  # L: input frames heard after the one emitted (>= 1 for a stage shaping the excitation)
    frames: int = 64  # causal training window
    loss_from: int = 32  # frames before this only warm the state up (receptive field 41 at the defaults)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    augment_source: bool = True
    synth: SynthAugmentConfig = field(default_factory=SynthAugmentConfig)
    source_input: str = "source"  # must be what the shipped student hears
    p_same_style: float = 0.125
    p_source_start: float = 0.75  # x starts from the source (SDEdit), else from the target
    p_top: float = 0.5  # share of examples at sigma_max (strength 1, the shipped default)
    init_from_shipped: bool = True  # copy every parameter whose name and shape match (conditioning, convs)
    steps: int = 1500
    batch_size: int = 12
    lr: float = 1e-3
    warmup: int = 100
    lr_final: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    workers: int = 1
    threads: int = 0
    device: str = "auto"
    val_every: int = 250
    val_windows: int = 48
    checkpoint_every: int = 250

    def __post_init__(self) -> None:
        if self.lookahead < 0 or not 0 < self.loss_from < self.frames:
            raise StylehostError(f"need lookahead >= 0 and 0 < loss_from < frames, got {self.lookahead}, "
                                 f"{self.loss_from}, {self.frames}")
        for name in ("p_source_start", "p_top"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise StylehostError(f"{name} must be in [0, 1], got {getattr(self, name)}")


def student_config(shipped: ModelConfig, cfg: CausalDistillConfig) -> ModelConfig:
    """The causal student's model config: the shipped one's widths, ``cfg``'s time structure and look-ahead;
    ``window`` is the training window and ``emit`` 1 (a live call may emit any number of frames)."""
    return dataclasses.replace(shipped, causal=cfg.causal, window=cfg.frames, lookahead=cfg.lookahead, emit=1)


def loaded_frames(shipped: ModelConfig, cfg: CausalDistillConfig) -> int:
    """Frames per training window cut from the data: the causal window plus the look-ahead either side needs."""
    groups, rem = divmod(cfg.frames - cfg.loss_from, shipped.emit)
    first_start = cfg.loss_from + shipped.emit + shipped.lookahead - shipped.window
    if rem or first_start < 0:
        raise StylehostError(f"frames - loss_from must be a multiple of the shipped emit ({shipped.emit}) and "
                             f"loss_from >= {shipped.window - shipped.emit - shipped.lookahead}, got "
                             f"{cfg.frames}, {cfg.loss_from}")
    return cfg.frames + max(cfg.lookahead, shipped.lookahead)


@torch.no_grad()
def shipped_targets(shipped: Denoiser, x: torch.Tensor, sigma: torch.Tensor, source: torch.Tensor,
                    style_vec: torch.Tensor, loss_from: int, frames: int) -> torch.Tensor:
    """x0 of frames [loss_from, frames) as the shipped student emits them: for each group of its ``emit``
    frames, one call on the window ending ``lookahead`` frames after the group. (B, 1, m, frames - loss_from)."""
    mc = shipped.cfg
    t, look, e = mc.window, mc.lookahead, mc.emit
    ends = range(loss_from + e, frames + 1, e)
    xs = torch.cat([x[..., g + look - t : g + look] for g in ends])
    srcs = torch.cat([source[..., g + look - t : g + look] for g in ends])
    b = x.shape[0]
    out = shipped(xs, sigma.repeat(len(ends)), srcs, style_vec.repeat(len(ends), 1))
    cols = out[..., t - look - e : t - look]  # (G*B, 1, m, e)
    return torch.cat(cols.split(b), dim=-1)


def regression_loss(student: nn.Module, module: CausalDenoiser, shipped: Denoiser, batch: dict[str, torch.Tensor],
                    cfg: CausalDistillConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean squared distance of the causal x0 to the shipped student's on the loss frames (normalised log-mel)."""
    mc = shipped.cfg
    target = mc.normalize(batch["target"])[:, None]
    source = mc.heard(batch["source"])
    b = target.shape[0]
    u = torch.rand(b, generator=generator, dtype=torch.float64)
    u = torch.where(torch.rand(b, generator=generator) < cfg.p_top, torch.zeros_like(u), u)
    sigma = _ramp(u, mc).to(target)
    from_source = (torch.rand(b, generator=generator) < cfg.p_source_start).to(target)[:, None, None, None]
    start = from_source * source[:, :1] + (1 - from_source) * target
    x = start + sigma[:, None, None, None] * torch.randn(target.shape, generator=generator).to(target)
    onehot = nn.functional.one_hot(batch["style"], len(mc.styles)).to(target)
    aim = shipped_targets(shipped, x, sigma, source, shipped.style_vectors(onehot), cfg.loss_from, cfg.frames)
    look = cfg.lookahead
    pred = student(x[..., : cfg.frames], sigma, source[..., look : look + cfg.frames], module.style_vectors(onehot))
    return ((pred[..., cfg.loss_from :] - aim) ** 2).mean()


@torch.no_grad()
def validate(ema: CausalDenoiser, shipped: Denoiser, val: dict[str, torch.Tensor], cfg: CausalDistillConfig
             ) -> dict[str, float]:
    """Seeded loss, and at strength 1 (one step from sigma_max): the causal and the shipped student's mean
    |log-mel| distance (dB) to the true target on the loss frames."""
    ema.eval()
    mc = shipped.cfg
    gen = torch.Generator().manual_seed(0)
    loss = float(regression_loss(ema, ema, shipped, val, cfg, gen))
    target = mc.normalize(val["target"])[:, None]
    source = mc.heard(val["source"])
    z = torch.randn(target.shape, generator=torch.Generator().manual_seed(1))
    sigma = torch.full((target.shape[0],), mc.sigma_max)
    x = source[:, :1] + mc.sigma_max * z
    onehot = nn.functional.one_hot(val["style"], len(mc.styles)).float()
    aim = shipped_targets(shipped, x, sigma, source, shipped.style_vectors(onehot), cfg.loss_from, cfg.frames)
    look = cfg.lookahead
    pred = ema(x[..., : cfg.frames], sigma, source[..., look : look + cfg.frames], ema.style_vectors(onehot))
    truth = target[..., cfg.loss_from : cfg.frames]
    db = mc.logmel_std * DB_PER_NEPER
    return {"val_loss": loss,
            "val_model_db": float((pred[..., cfg.loss_from :] - truth).abs().mean()) * db,
            "val_source_db": float((source[:, :1, :, cfg.loss_from : cfg.frames] - truth).abs().mean()) * db,
            "val_teacher_db": float((aim - truth).abs().mean()) * db,
            "val_to_shipped_db": float((pred[..., cfg.loss_from :] - aim).abs().mean()) * db}


def copy_matching(student: nn.Module, shipped: nn.Module) -> int:
    """Copy every parameter and buffer whose name and shape match; returns how many tensors were copied."""
    own = student.state_dict()
    theirs = shipped.state_dict()
    matched = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
    student.load_state_dict({**own, **matched})
    return len(matched)


def causal_distill(cfg: CausalDistillConfig, shipped_path: Path, data_dir: Path, out_dir: Path, *,
                   resume: bool = True, progress: bool = True) -> CausalDenoiser:
    """Regress (or resume regressing) a causal student onto the windowed model ``shipped_path``; returns its EMA."""
    out_dir = Path(out_dir)
    shipped = load_denoiser(shipped_path).requires_grad_(False)
    if shipped.cfg.causal is not None:
        raise StylehostError(f"{shipped_path} is itself causal: regress onto a windowed (UNet) student")
    if shipped.cfg.source_channels != (2 if cfg.source_input == "both" else 1):
        raise StylehostError(f"{shipped_path} hears {shipped.cfg.source_channels} window(s); set source_input "
                             "to what it hears")
    info = {"path": str(shipped_path), "sha256": file_sha256(shipped_path)}
    mc = student_config(shipped.cfg, cfg)
    load_cfg = dataclasses.replace(mc, window=loaded_frames(shipped.cfg, cfg))  # what the loader cuts
    rank, world, device = setup_distributed(cfg.device)
    if world > 1:
        raise StylehostError("causal-distill runs in one process")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    history: dict[str, list[Any]] = {"train": [], "val": []}
    step, ckpt_path = 0, out_dir / "checkpoint.pt"
    ckpt = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    if ckpt is not None:
        check_model_config(ckpt, mc, ckpt_path)
        if ckpt.get("teacher", {}).get("sha256") != info["sha256"]:
            raise StylehostError(f"checkpoint {ckpt_path} regressed onto another student; use --no-resume")
    train_clips, val_clips = load_pairs(data_dir, load_cfg)
    shipped = shipped.to(device)
    torch.manual_seed(cfg.seed)
    module = CausalDenoiser(mc).to(device)
    copied = copy_matching(module, shipped) if cfg.init_from_shipped else 0
    ema = copy.deepcopy(module).requires_grad_(False)
    opt = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if ckpt is not None:
        module.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        step, history = int(ckpt["step"]), ckpt["history"]
    provenance = Provenance(ckpt.get("provenance") if ckpt is not None else None, cfg.seed, step)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps({**to_dict(cfg), "teacher": info}, indent=2))
    print(f"causal-distill: {METHOD}; shipped {shipped_path}; receptive field {module.net.receptive_field} "
          f"frames; {copied} tensors copied; {len(train_clips)} train clips; from step {step}", flush=True)
    val = fixed_windows(val_clips, load_cfg, cfg.val_windows, source_input=cfg.source_input) if val_clips else {}
    loader = batch_loader(cfg, load_cfg, train_clips, rank, step)
    torch.manual_seed(cfg.seed * 1009 + step)
    # the student samples as the model it copies: a consistency student's multistep re-noising, or a teacher's
    # Euler (1 step from any strength: its denoiser's x0, DDIM 1, which the distill report scores)
    meta = {"kind": "student", "method": METHOD, "sampler": model_sampler(shipped_path), "teacher": info,
            "source_input": cfg.source_input}

    def save(at: int) -> None:
        record = provenance.snapshot(at)
        save_checkpoint(ckpt_path, {
            "kind": "student", "config": to_dict(cfg), "model_config": mc.to_dict(), "teacher": info,
            "meta": meta, "step": at, "model": module.state_dict(), "ema": ema.state_dict(),
            "optimizer": opt.state_dict(), "history": history, "provenance": record})
        save_model(out_dir / "model.pt", ema, {**meta, "step": at, "config": to_dict(cfg), "provenance": record})
        plot_history(history, out_dir / "loss.png", loss_name="regression onto the shipped student")

    run_loop(cfg, module=module, ema=ema, opt=opt, batches=iter(loader), device=device,
             loss_fn=lambda batch: regression_loss(module, module, shipped, batch, cfg),
             step=step, history=history, save_fn=save,
             validate_fn=(lambda: validate(ema, shipped, val, cfg)) if val else None, progress=progress)
    print(f"run folder {out_dir}", flush=True)
    return ema.eval()


def add_causal_distill_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shipped", type=Path, required=True,
                   help="the windowed model to regress onto: the teacher (models/teacher/model.pt) or a student")
    add_run_arguments(p, "CausalDistillConfig", "--set steps=2000 --set lookahead=1")


def cli_causal_distill(args: argparse.Namespace) -> int:
    cfg = load_config(CausalDistillConfig, args.config, args.overrides)
    causal_distill(cfg, args.shipped, args.data, args.out, resume=not args.no_resume, progress=not args.no_progress)
    return 0
