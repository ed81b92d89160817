"""`stylehost distill`: consistency distillation of the teacher into a few-step student.

Method: consistency distillation, CD (Song, Dhariwal, Chen & Sutskever 2023, "Consistency Models",
Algorithm 2), with the teacher's Heun step as the ODE solver and an EMA target network. For a pair of
adjacent noise levels t_hi > t_lo on the teacher's rho-warped Karras ramp (``ode_points`` = N points),

    x_hi = x + t_hi * z,   x_lo = Heun_teacher(x_hi, t_hi -> t_lo),
    loss = lambda(t_hi, t_lo) * || f_student(x_hi, t_hi) - f_target(x_lo, t_lo) ||^2   (frame-weighted),

and the target network follows the student as an EMA (decay ``target_decay``, mu in the paper). The
student learns to jump from any point of the teacher's probability-flow ODE straight to its end.

Why CD rather than progressive distillation (Salimans & Ho 2022): the transfer-strength control starts
sampling at sigma_start(strength) from the *noised source*, anywhere on the ramp, so the student must
be good from any starting sigma. A consistency model is, by definition, trained at every level; one
student samples in 1, 2 or 4 steps (``sample_consistency``, re-noising with frame-anchored noise),
whereas progressive distillation yields one schedule-bound student per step count. Three adaptations:

- The grid is shifted by a random offset per example (t_hi anywhere on the ramp, t_lo one grid step
  lower), so every continuous sigma_start a strength can ask for is trained, not only N points.
- lambda = 1 / (t_hi - t_lo), normalised (Song & Dhariwal 2023), instead of the original 1, so that
  low-sigma pairs (small strengths, the later steps of multistep sampling) are not drowned (see
  ``pair_weights``).
- A share ``p_source_start`` of examples start from the noised *source* (x = source), exactly what
  ``transfer`` feeds at strength < 1. Self-consistency along the teacher's ODE holds from any point,
  so the student learns to reproduce the teacher's SDEdit transfer at every strength.

The student keeps the teacher's class and ModelConfig (it starts from the teacher's weights), so the
samplers, ``stream.py``, export and the runtime treat it alike; its model file names its sampler
(``meta['sampler'] = 'consistency'``, read with ``checkpoint.model_sampler``). The EDM wrapper's c_skip
is not exactly 1 at sigma_min (0.9996 at 0.02), so the boundary condition f(x, sigma_min) = x holds
to that precision rather than by construction; keeping the wrapper unchanged is what keeps the
interface identical.

Run folder as for training: ``checkpoint.pt`` (student, inference EMA, target network, optimizer,
step, history, config, the teacher's hash), ``model.pt`` (inference EMA + meta), ``config.json``,
``loss.png``. Re-running the same command resumes; a checkpoint from another teacher is refused.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from diffusion.augment import AugmentConfig
from diffusion.checkpoint import (
    check_model_config,
    load_checkpoint,
    load_denoiser,
    save_checkpoint,
    save_model,
)
from diffusion.config import load_config, to_dict
from diffusion.errors import StylehostError
from diffusion.model import Denoiser, ModelConfig
from diffusion.pairs import fixed_windows
from diffusion.provenance import Provenance
from diffusion.sampling import transfer
from diffusion.synth_augment import SynthAugmentConfig
from diffusion.train import (
    DB_PER_NEPER,
    add_run_arguments,
    batch_loader,
    init_weights,
    input_logmel,
    load_pairs,
    plot_history,
    run_loop,
    setup_distributed,
)

METHOD = "consistency distillation (Song et al. 2023), teacher Heun solver, EMA target"
SAMPLER = "consistency"
WEIGHTINGS = ("ict", "uniform")


@dataclass(frozen=True)
class DistillConfig:
    """The distillation recipe; saved in every checkpoint. The model config is the teacher's."""

    augment: AugmentConfig = field(default_factory=AugmentConfig)
    augment_source: bool = True
    synth: SynthAugmentConfig = field(default_factory=SynthAugmentConfig)  # synthesized sources (issue 15)
    # "excitation": the denoiser hears the source's harmonic excitation, not the source (issue 15; the bundle's
    # manifest says so as denoiser_input, and the processor feeds it the same)
    source_input: str = "source"
    # Continue a student: the student, its EMA and the target network start from this model file (a
    # student of the teacher's model config) instead of the teacher's weights.
    init: str = ""
    # The student's look-ahead frames (issue 17): -1 keeps the teacher's; fewer moves the emphasised emitted region
    # to the window's newest frames, so the student learns the frames a low-delay bundle plays (the teacher's
    # trajectories are unchanged: it sees the same window) and its model file plays them with no --lookahead.
    lookahead: int = -1
    steps: int = 6000  # not yet measured on the real teacher: about 3 network passes per step
    batch_size: int = 32  # per process
    lr: float = 1e-3  # best of 2e-4 and 1e-3 in benchmarks/distill_sanity.py (tiny teacher, 800 steps)
    warmup: int = 100
    lr_final: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # the inference EMA written to model.pt
    target_decay: float = 0.95  # mu: the target network's EMA of the student (Song et al. 2023, CD)
    ode_points: int = 18  # N: points of the Karras ramp the teacher's Heun solver steps between
    p_source_start: float = 0.25  # share of examples starting from the noised source (SDEdit starts)
    weighting: str = "ict"  # lambda(t): "ict" = 1 / (t_hi - t_lo) (Song & Dhariwal 2023), "uniform" = 1
    emphasis: float = 4.0  # loss weight of the emitted frames, as in training
    p_same_style: float = 0.125
    seed: int = 0
    workers: int = 1
    threads: int = 0
    device: str = "auto"
    val_every: int = 500
    val_windows: int = 128
    val_steps: int = 1  # consistency-sampler steps of the validation samples (strength 1)
    val_teacher_steps: int = 8  # Heun steps of the teacher reference, computed once per run
    checkpoint_every: int = 500

    def __post_init__(self) -> None:
        if self.ode_points < 2:
            raise StylehostError(f"ode_points must be >= 2, got {self.ode_points}")
        if not 0.0 <= self.p_source_start <= 1.0:
            raise StylehostError(f"p_source_start must be in [0, 1], got {self.p_source_start}")
        if self.weighting not in WEIGHTINGS:
            raise StylehostError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if not 0.0 <= self.target_decay < 1.0:
            raise StylehostError(f"target_decay must be in [0, 1), got {self.target_decay}")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_teacher(path: Path) -> Denoiser:
    """The frozen teacher; refuses a missing file and a file that is itself a distilled student."""
    path = Path(path)
    if not path.is_file():
        raise StylehostError(f"no teacher at {path}: train one with `stylehost train` (it writes OUT/model.pt)")
    ckpt = load_checkpoint(path)
    if ckpt.get("kind") == "student" or (ckpt.get("meta") or {}).get("kind") == "student":
        raise StylehostError(f"{path} is a distilled student, not a teacher: distil from the teacher's model.pt "
                             "(the shipped one is models/teacher/model.pt)")
    return load_denoiser(path).requires_grad_(False)


def sigma_pairs(
    batch: int, cfg: DistillConfig, mc: ModelConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adjacent levels (t_hi, t_lo), each (B,), one grid step apart on the rho-warped ramp from sigma_max
    to sigma_min, at a random offset (so any sigma_start is trained, not only the N grid points).

    Worked example (sigma 0.02..40, rho 7, N 18): u = 0 gives (40, 30.3); u = 0.5 gives (2.39, 1.57);
    u = 16/17 gives (0.043, 0.02).
    """
    delta = 1.0 / (cfg.ode_points - 1)
    u = torch.rand(batch, generator=generator, dtype=torch.float64) * (1.0 - delta)
    return _ramp(u, mc), _ramp(u + delta, mc)


def _ramp(v: torch.Tensor, mc: ModelConfig) -> torch.Tensor:
    """Position v in [0, 1] on the rho-warped ramp from sigma_max (0) to sigma_min (1), float32."""
    hi, lo = mc.sigma_max ** (1 / mc.rho), mc.sigma_min ** (1 / mc.rho)
    return ((hi + v * (lo - hi)) ** mc.rho).float()


def pair_weights(t_hi: torch.Tensor, t_lo: torch.Tensor, cfg: DistillConfig, mc: ModelConfig) -> torch.Tensor:
    """lambda per example. "ict": 1 / (t_hi - t_lo) (Song & Dhariwal 2023, "Improved Techniques for
    Training Consistency Models"), divided by its mean over the ramp so the loss keeps its scale. With
    lambda = 1 the large errors of high-sigma pairs drown the low-sigma ones, and low sigmas are where
    small transfer strengths start. Measured on a tiny synthetic teacher (0.09 M params, 800 distillation
    steps): at strength 0.3 the 1-step student landed 2.18 dB (mean |log-mel|) from the teacher's ODE
    endpoint with lambda = 1, worse than undistilled 1-step DDIM (1.51 dB); with this weighting 1.00 dB."""
    if cfg.weighting == "uniform":
        return torch.ones_like(t_hi)
    delta = 1.0 / (cfg.ode_points - 1)
    grid = torch.linspace(0.0, 1.0 - delta, 1001, dtype=torch.float64)
    norm = float((1.0 / (_ramp(grid, mc) - _ramp(grid + delta, mc))).mean())
    return 1.0 / ((t_hi - t_lo) * norm)


@torch.no_grad()
def heun_step(teacher: nn.Module, x: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor,
              source: torch.Tensor, style_vec: torch.Tensor) -> torch.Tensor:
    """One Heun step of the teacher's probability-flow ODE (Algorithm 1 of Karras et al. 2022) with
    per-example sigmas (B,); sigma_next > 0, so the correction always applies."""
    s, sn = sigma[:, None, None, None], sigma_next[:, None, None, None]
    d = (x - teacher(x, sigma, source, style_vec)) / s
    x_euler = x + d * (sn - s)
    d2 = (x_euler - teacher(x_euler, sigma_next, source, style_vec)) / sn
    return x + (d + d2) / 2 * (sn - s)


def consistency_loss(
    student: nn.Module,
    module: Denoiser,
    target_net: Denoiser,
    teacher: Denoiser,
    batch: dict[str, torch.Tensor],
    cfg: DistillConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The CD loss (Algorithm 2 of Song et al. 2023; squared L2 with per-frame weights, lambda from ``pair_weights``).

    ``student`` is what is called (the DDP wrapper when distributed), ``module`` the bare student. Each
    network uses its own style table, so the student's table is distilled with it.
    """
    mc = module.cfg
    target = mc.normalize(batch["target"])[:, None]
    source = mc.heard(batch["source"])
    b = target.shape[0]
    t_hi, t_lo = (t.to(target) for t in sigma_pairs(b, cfg, mc, generator))
    from_source = (torch.rand(b, generator=generator) < cfg.p_source_start).to(target)[:, None, None, None]
    start = from_source * source[:, :1] + (1 - from_source) * target
    x_hi = start + t_hi[:, None, None, None] * torch.randn(target.shape, generator=generator).to(target)
    onehot = nn.functional.one_hot(batch["style"], len(mc.styles)).to(target)
    with torch.no_grad():
        x_lo = heun_step(teacher, x_hi, t_hi, t_lo, source, teacher.style_vectors(onehot))
        aim = target_net(x_lo, t_lo, source, target_net.style_vectors(onehot))
    pred = student(x_hi, t_hi, source, module.style_vectors(onehot))
    w = mc.frame_weights(cfg.emphasis).to(target)
    lam = pair_weights(t_hi, t_lo, cfg, mc)[:, None, None, None]
    return (lam * (pred - aim) ** 2 * w).mean() / w.mean()


@torch.no_grad()
@torch.no_grad()
def window_distances_db(model: Denoiser, windows: dict[str, torch.Tensor], steps: int, sampler: str,
                        strength: float = 1.0) -> torch.Tensor:
    """(B,) mean |log-mel| distance (dB) of each of ``model``'s sampled windows (seed 0) to its true target."""
    onehot = nn.functional.one_hot(windows["style"], len(model.cfg.styles)).float()
    pred = transfer(model, windows["source"], model.style_vectors(onehot), strength=strength, steps=steps,
                    sampler=sampler, seed=0)
    return (pred - windows["target"]).abs().mean(dim=tuple(range(1, pred.dim()))) * DB_PER_NEPER


def window_distance_db(model: Denoiser, windows: dict[str, torch.Tensor], steps: int, sampler: str,
                       strength: float = 1.0) -> float:
    """Mean |log-mel| distance (dB) of ``model``'s sampled windows (seed 0) to the true target windows."""
    return float(window_distances_db(model, windows, steps, sampler, strength).mean())


class Validator:
    """Seeded CD loss and 1-step distances on fixed val windows; the teacher's distance is computed once."""

    def __init__(self, val: dict[str, torch.Tensor], teacher: Denoiser, cfg: DistillConfig) -> None:
        self.val, self.teacher, self.cfg = val, teacher, cfg
        self.teacher_db: float | None = None

    @torch.no_grad()
    def __call__(self, ema: Denoiser, target_net: Denoiser) -> dict[str, float]:
        ema.eval()
        if self.teacher_db is None:
            self.teacher_db = window_distance_db(self.teacher, self.val, self.cfg.val_teacher_steps, "heun")
        gen = torch.Generator().manual_seed(0)
        loss = float(consistency_loss(ema, ema, target_net, self.teacher, self.val, self.cfg, gen))
        return {
            "val_loss": loss,
            "val_model_db": window_distance_db(ema, self.val, self.cfg.val_steps, SAMPLER),
            "val_source_db": float((input_logmel(self.val["source"]) - self.val["target"]).abs().mean())
            * DB_PER_NEPER,
            "val_teacher_db": self.teacher_db,
        }


def distill(cfg: DistillConfig, teacher_path: Path, data_dir: Path, out_dir: Path, *, resume: bool = True,
            progress: bool = True) -> Denoiser:
    """Distil (or resume distilling) ``teacher_path`` into ``out_dir``; returns the student's inference EMA."""
    out_dir = Path(out_dir)
    teacher = load_teacher(teacher_path)
    teacher_info = {"path": str(teacher_path), "sha256": file_sha256(teacher_path)}
    mc = teacher.cfg
    rank, world, device = setup_distributed(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    history: dict[str, list[Any]] = {"train": [], "val": []}
    step, ckpt_path = 0, out_dir / "checkpoint.pt"
    ckpt = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    if ckpt is not None:
        check_model_config(ckpt, mc, ckpt_path)
        if ckpt.get("teacher", {}).get("sha256") != teacher_info["sha256"]:
            raise StylehostError(f"checkpoint {ckpt_path} was distilled from another teacher "
                                 f"({ckpt.get('teacher', {}).get('path')}); use --no-resume or another --out")
    train_clips, val_clips = load_pairs(data_dir, mc)

    teacher = teacher.to(device)
    module = copy.deepcopy(teacher).requires_grad_(True)  # the student starts as the teacher ...
    if cfg.init:  # ... or as the student it continues
        module.load_state_dict(init_weights(Path(cfg.init), mc))
    if cfg.lookahead >= 0:
        module.play_with_lookahead(cfg.lookahead)  # the same weights, trained to emit nearer the window's end
    ema = copy.deepcopy(module).requires_grad_(False)
    target_net = copy.deepcopy(module).requires_grad_(False)
    opt = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if ckpt is not None:
        module.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        target_net.load_state_dict(ckpt["target"])
        opt.load_state_dict(ckpt["optimizer"])
        step, history = int(ckpt["step"]), ckpt["history"]
    provenance = Provenance(ckpt.get("provenance") if ckpt is not None else None, cfg.seed, step)
    student: nn.Module = module
    if world > 1:
        student = nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.index else None)

    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps({**to_dict(cfg), "teacher": teacher_info}, indent=2))
        print(f"distill: {METHOD}; teacher {teacher_path}; {len(train_clips)} train clips, {len(val_clips)} val; "
              f"{world} process(es) on {device}; from step {step}", flush=True)
    val = fixed_windows(val_clips, mc, cfg.val_windows, source_input=cfg.source_input) \
        if rank == 0 and val_clips else {}
    validator = Validator({k: v.to(device) for k, v in val.items()}, teacher, cfg) if val else None
    loader = batch_loader(cfg, mc, train_clips, rank, step)
    torch.manual_seed(cfg.seed * 1009 + rank * 7919 + step)
    meta = {"kind": "student", "method": METHOD, "sampler": SAMPLER, "teacher": teacher_info}

    def update_target(_: int) -> None:
        with torch.no_grad():
            for pt, p in zip(target_net.parameters(), module.parameters(), strict=True):
                pt.lerp_(p, 1 - cfg.target_decay)

    def save(at: int) -> None:
        record = provenance.snapshot(at)  # command, commit, seed and time of every session, as training keeps
        save_checkpoint(ckpt_path, {
            "kind": "student", "config": to_dict(cfg), "model_config": mc.to_dict(), "teacher": teacher_info,
            "meta": meta, "step": at, "model": module.state_dict(), "ema": ema.state_dict(),
            "target": target_net.state_dict(), "optimizer": opt.state_dict(), "history": history,
            "provenance": record})
        save_model(out_dir / "model.pt", ema, {**meta, "step": at, "config": to_dict(cfg), "provenance": record})
        plot_history(history, out_dir / "loss.png", loss_name="consistency distillation loss")

    run_loop(cfg, module=module, ema=ema, opt=opt, batches=iter(loader), device=device,
             loss_fn=lambda batch: consistency_loss(student, module, target_net, teacher, batch, cfg),
             step=step, history=history, save_fn=save, after_step=update_target,
             validate_fn=(lambda: validator(ema, target_net)) if validator else None, rank=rank, progress=progress)
    if rank == 0:
        print(f"run folder {out_dir}", flush=True)
    if world > 1:
        dist.barrier()
    return ema.eval()


def add_distill_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", type=Path, required=True, help="the teacher's model file (runs/teacher/model.pt)")
    add_run_arguments(p, "DistillConfig", "--set steps=2000 --set target_decay=0.9")


def cli_distill(args: argparse.Namespace) -> int:
    cfg = load_config(DistillConfig, args.config, args.overrides)
    try:
        distill(cfg, args.teacher, args.data, args.out, resume=not args.no_resume, progress=not args.no_progress)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
