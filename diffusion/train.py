"""`stylehost train`: the multi-to-multi teacher (EDM training, Karras et al. 2022) on paired windows.

One process, or several under ``torchrun`` (DDP over gloo on CPU, nccl on GPU; ``batch_size`` is per
process). The run folder holds ``checkpoint.pt`` (resumable), ``model.pt`` (EMA weights, what
distillation and export read), ``config.json`` and ``loss.png``. Re-running the same command resumes.

Loss: the EDM-weighted x0 error, averaged over every frame but weighted ``emphasis`` times on the
frames the live engine emits ([T-L-emit, T-L), see ModelConfig), so the model is best where the
engine listens.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from diffusion.augment import AugmentConfig
from diffusion.checkpoint import (
    build_denoiser,
    check_model_config,
    load_checkpoint,
    load_denoiser,
    save_checkpoint,
    save_model,
)
from diffusion.config import load_config, to_dict
from diffusion.errors import StylehostError
from diffusion.model import Denoiser, ModelConfig, count_macs, parameter_count
from diffusion.pairs import Clip, PairWindows, estimate_ram_mb, fixed_windows, load_clips
from diffusion.provenance import Provenance
from diffusion.sampling import transfer
from diffusion.schedule import training_sigmas
from diffusion.synth_augment import SynthAugmentConfig

DB_PER_NEPER = 20.0 / math.log(10.0)  # natural-log magnitude difference -> dB


@dataclass(frozen=True)
class TrainConfig:
    """The full training recipe; saved in every checkpoint. Defaults are the shipped teacher's."""

    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    augment_source: bool = True
    synth: SynthAugmentConfig = field(default_factory=SynthAugmentConfig)  # synthesized sources (issue 15)
    # "excitation": the denoiser hears the source's harmonic excitation, not the source (issue 15; the bundle's
    # manifest says so as denoiser_input, and the processor feeds it the same)
    source_input: str = "source"
    init: str = ""  # fine-tune: start from this model file's weights (its model config must be ``model``)
    steps: int = 24000  # ~1.5 h at the ~4.5 steps/s measured at batch 32 on the 2-core CPU
    batch_size: int = 32  # per process
    lr: float = 1e-3
    warmup: int = 200
    lr_final: float = 0.1  # cosine decay to lr * lr_final at the last step
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    # ln(sigma) ~ N(p_mean, p_std^2). Higher and wider than EDM's image default (-1.2, 1.2): few-step
    # samplers and the strength control start at sigma 8-40, which (-1.2, 1.2) visits 0.3% of the time
    # (measured at step 2,000: 2-step samples 31 dB from the target vs 11.5 dB for the unchanged source).
    p_mean: float = 0.4
    p_std: float = 1.4
    emphasis: float = 4.0  # loss weight of the emitted frames
    p_same_style: float = 0.125
    seed: int = 0
    workers: int = 1  # DataLoader worker processes cutting batches
    threads: int = 0  # torch intra-op threads in the training process; 0 = torch's default
    device: str = "auto"  # auto | cpu | cuda
    val_every: int = 1000
    val_windows: int = 128
    val_steps: int = 2  # Euler steps of the validation samples (strength 1)
    checkpoint_every: int = 1000


def input_logmel(source: torch.Tensor) -> torch.Tensor:
    """The input's own log-mel from what a denoiser hears: (B, n_mels, T), or channel 0 of (B, C, n_mels, T)."""
    return source[:, 0] if source.ndim == 4 else source


def init_weights(path: Path, model_cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The EMA weights of a model file to fine-tune from, refused when its model config differs.

    A one-channel model may start a two-channel one (source_channels 2, hearing the input and its excitation):
    the stem's new channel starts at zero, so step 0 is the one-channel model and training adds the rest."""
    start = load_denoiser(path)
    state = start.state_dict()
    if start.cfg.source_channels == 1 and model_cfg.source_channels == 2:
        stem = state["net.stem.weight"]  # (out, 1 + 1, 3, 3): x, then what it hears
        state["net.stem.weight"] = torch.cat([stem, torch.zeros_like(stem[:, -1:])], dim=1)
        start_cfg = dataclasses.replace(start.cfg, source_channels=2)
    else:
        start_cfg = start.cfg
    if start_cfg != model_cfg:
        raise StylehostError(f"init model {path} has another model config ({start.cfg}); "
                             "pass its model section with --config or --set model.*")
    return state


def lr_at(cfg: Any, step: int) -> float:
    """Linear warm-up, then cosine decay to lr * lr_final (``cfg``: a TrainConfig or DistillConfig)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * t)))


def edm_loss(
    denoiser: nn.Module,
    module: Denoiser,
    batch: dict[str, torch.Tensor],
    cfg: TrainConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Weighted x0 error (lambda(sigma) of Karras et al. 2022 times per-frame weights), a scalar.

    ``denoiser`` is what is called (the DDP wrapper when distributed), ``module`` the bare Denoiser.
    """
    mc = module.cfg
    target = mc.normalize(batch["target"])[:, None]
    source = mc.heard(batch["source"])
    b = target.shape[0]
    sigma = training_sigmas(b, cfg.p_mean, cfg.p_std, generator).to(target)
    noise = torch.randn(target.shape, generator=generator).to(target)
    onehot = nn.functional.one_hot(batch["style"], len(mc.styles)).to(target)
    x0 = denoiser(target + sigma[:, None, None, None] * noise, sigma, source, module.style_vectors(onehot))
    sd = mc.sigma_data
    lam = ((sigma**2 + sd**2) / (sigma * sd) ** 2)[:, None, None, None]
    w = mc.frame_weights(cfg.emphasis).to(target)
    return (lam * (x0 - target) ** 2 * w).mean() / w.mean()


@torch.no_grad()
def validate(ema: Denoiser, val: dict[str, torch.Tensor], cfg: TrainConfig) -> dict[str, float]:
    """Seeded loss, and the log-mel distance (dB) to the target of samples vs of the unchanged source."""
    ema.eval()
    gen = torch.Generator().manual_seed(0)
    loss = float(edm_loss(ema, ema, val, cfg, gen))
    onehot = nn.functional.one_hot(val["style"], len(ema.cfg.styles)).float()
    pred = transfer(ema, val["source"], ema.style_vectors(onehot), strength=1.0, steps=cfg.val_steps, seed=0)
    tgt = val["target"]
    return {
        "val_loss": loss,
        "val_model_db": float((pred - tgt).abs().mean()) * DB_PER_NEPER,
        "val_source_db": float((input_logmel(val["source"]) - tgt).abs().mean()) * DB_PER_NEPER,
    }


def plot_history(history: dict[str, list], path: Path, loss_name: str = "EDM loss") -> None:
    """Training loss (smoothed), validation loss and distances, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    if history["train"]:
        steps, losses = zip(*history["train"], strict=True)
        ax1.semilogy(steps, losses, label="train (mean per 25 steps)")
    if history["val"]:
        vs = [v["step"] for v in history["val"]]
        ax1.semilogy(vs, [v["val_loss"] for v in history["val"]], "o-", label="validation")
        ax2.plot(vs, [v["val_model_db"] for v in history["val"]], "o-", label="model sample")
        ax2.plot(vs, [v["val_source_db"] for v in history["val"]], "--", label="unchanged source")
        if "val_teacher_db" in history["val"][-1]:  # distillation runs: the teacher's own distance
            ax2.plot(vs, [v.get("val_teacher_db", float("nan")) for v in history["val"]], ":", label="teacher")
    ax1.set(xlabel="step", ylabel="loss", title=loss_name)
    ax2.set(xlabel="step", ylabel="dB", title="log-mel distance to target (val)")
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def setup_distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise StylehostError("device=cuda asked for, but torch sees no CUDA GPU; use --set device=cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def load_pairs(data_dir: Path, model_cfg: ModelConfig) -> tuple[list[Clip], list[Clip]]:
    """(train clips, val clips) in RAM; a clear error when no train clip holds one window."""
    train_clips = load_clips(data_dir, model_cfg, "train")
    val_clips = load_clips(data_dir, model_cfg, "val")
    if not train_clips:
        raise StylehostError(f"dataset {data_dir} has no train clips of at least {model_cfg.window} frames")
    return train_clips, val_clips


def batch_loader(cfg: Any, model_cfg: ModelConfig, clips: list[Clip], rank: int, step: int) -> DataLoader:
    """Endless paired batches cut in ``cfg.workers`` processes; seeded by (seed, rank, step) so a resumed
    run does not replay the windows it has seen. ``cfg`` is a TrainConfig or a DistillConfig."""
    dataset = PairWindows(clips, model_cfg, cfg.batch_size, (cfg.seed, rank, step),
                          cfg.augment if cfg.augment_source else None, cfg.p_same_style, cfg.synth,
                          cfg.source_input)
    return DataLoader(dataset, batch_size=None, num_workers=cfg.workers,
                      persistent_workers=cfg.workers > 0, prefetch_factor=4 if cfg.workers else None)


def run_loop(
    cfg: Any,
    *,
    module: nn.Module,
    ema: nn.Module,
    opt: torch.optim.Optimizer,
    batches: Iterator[dict[str, torch.Tensor]],
    device: torch.device,
    loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    step: int,
    history: dict[str, list[Any]],
    save_fn: Callable[[int], None],
    validate_fn: Callable[[], dict[str, float]] | None = None,
    after_step: Callable[[int], None] | None = None,
    rank: int = 0,
    progress: bool = True,
) -> int:
    """The optimisation loop shared by ``train`` and ``distill``; returns the final step.

    Per step: lr from ``lr_at``, ``loss_fn(batch)``, clipped AdamW step, EMA of ``module`` into ``ema``,
    then ``after_step(step)`` (distillation updates its target network there). Appends to ``history``
    (mean loss per 25 steps, validation dicts), validates and saves on rank 0 every ``val_every`` /
    ``checkpoint_every`` steps and at the end. ``cfg`` needs steps, lr, warmup, lr_final, grad_clip,
    ema_decay, val_every and checkpoint_every (TrainConfig and DistillConfig both have them).
    """
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, disable=not progress or rank != 0, unit="step",
               dynamic_ncols=True)
    window: list[float] = []
    smooth: float | None = None
    t0, start_step = time.perf_counter(), step
    while step < cfg.steps:
        batch = {k: v.to(device) for k, v in next(batches).items()}
        module.train()
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        loss = loss_fn(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
        opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))  # warm-up so short runs have a usable EMA
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), module.parameters(), strict=True):
                pe.lerp_(p, 1 - decay)
        if after_step is not None:
            after_step(step)
        step += 1
        window.append(loss.item())
        smooth = window[-1] if smooth is None else 0.95 * smooth + 0.05 * window[-1]
        if len(window) == 25 or step == cfg.steps:
            history["train"].append((step, sum(window) / len(window)))
            window = []
        bar.update(1)
        bar.set_postfix(loss=f"{smooth:.4f}")
        if rank == 0 and validate_fn is not None and (step % cfg.val_every == 0 or step == cfg.steps):
            history["val"].append({"step": step, **validate_fn()})
            last = history["val"][-1]
            teacher = f", teacher {last['val_teacher_db']:.2f} dB" if "val_teacher_db" in last else ""
            bar.write(f"step {step}: val loss {last['val_loss']:.4f}, sample {last['val_model_db']:.2f} dB vs "
                      f"source {last['val_source_db']:.2f} dB{teacher} from target")
        if rank == 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            save_fn(step)
    bar.close()
    if rank == 0 and step > start_step:
        rate = (step - start_step) / (time.perf_counter() - t0)
        print(f"done: {step} steps, {rate:.2f} steps/s over this session", flush=True)
    if rank == 0 and step == start_step:
        save_fn(step)
    return step


def train(cfg: TrainConfig, data_dir: Path, out_dir: Path, *, resume: bool = True,
          progress: bool = True) -> Denoiser:
    """Train (or resume) a teacher into ``out_dir``; returns the EMA denoiser."""
    out_dir = Path(out_dir)
    rank, world, device = setup_distributed(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    train_clips, val_clips = load_pairs(data_dir, cfg.model)

    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    module = build_denoiser(cfg.model).to(device)
    if cfg.init:
        module.load_state_dict(init_weights(Path(cfg.init), cfg.model))
    ema = copy.deepcopy(module).requires_grad_(False)
    opt = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: dict[str, list[Any]] = {"train": [], "val": []}
    step, ckpt_path, saved_provenance = 0, out_dir / "checkpoint.pt", None
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        check_model_config(ckpt, cfg.model, ckpt_path)
        module.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        step, history = int(ckpt["step"]), ckpt["history"]
        saved_provenance = ckpt.get("provenance")
    provenance = Provenance(saved_provenance, cfg.seed, step)
    model: nn.Module = module
    if world > 1:
        model = nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.index else None)

    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
        print(f"teacher: {parameter_count(module) / 1e6:.2f} M params, {count_macs(ema) / 1e6:.0f} M MACs per "
              f"window; {len(train_clips)} train clips ({estimate_ram_mb(train_clips):.0f} MB), "
              f"{len(val_clips)} val; {world} process(es) on {device}; from step {step}", flush=True)
    val = fixed_windows(val_clips, cfg.model, cfg.val_windows, source_input=cfg.source_input) \
        if rank == 0 and val_clips else {}
    loader = batch_loader(cfg, cfg.model, train_clips, rank, step)
    torch.manual_seed(cfg.seed * 1009 + rank * 7919 + step)  # noise and sigmas: distinct per rank

    def save(at: int) -> None:
        record = provenance.snapshot(at)
        payload = {"kind": "teacher", "config": to_dict(cfg), "model_config": cfg.model.to_dict(), "step": at,
                   "model": module.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                   "history": history, "provenance": record}
        save_checkpoint(ckpt_path, payload)
        save_model(out_dir / "model.pt", ema,
                   {"kind": "teacher", "step": at, "config": to_dict(cfg), "provenance": record})
        plot_history(history, out_dir / "loss.png")

    run_loop(cfg, module=module, ema=ema, opt=opt, batches=iter(loader), device=device,
             loss_fn=lambda batch: edm_loss(model, module, batch, cfg), step=step, history=history, save_fn=save,
             validate_fn=(lambda: validate(ema, val, cfg)) if val else None, rank=rank, progress=progress)
    if rank == 0:
        print(f"run folder {out_dir}", flush=True)
    if world > 1:
        dist.barrier()
    return ema.eval()


def add_run_arguments(p: argparse.ArgumentParser, keys: str, example: str) -> None:
    """--data, --out, --config, --set, --no-resume, --no-progress: every resumable training command's.
    ``keys`` says what the config file holds, ``example`` is a --set example."""
    p.add_argument("--data", type=Path, required=True, help="dataset folder (with manifest.json)")
    p.add_argument("--out", type=Path, required=True, help="run folder; an existing checkpoint there is resumed")
    p.add_argument("--config", type=Path, help=f"JSON config file (keys as {keys})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override one config key, e.g. {example}")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT holds a checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    add_run_arguments(p, "TrainConfig, nested 'model'", "--set steps=500 --set model.channels=[16,32,64,96]")


def cli_train(args: argparse.Namespace) -> int:
    cfg = load_config(TrainConfig, args.config, args.overrides)
    try:
        train(cfg, args.data, args.out, resume=not args.no_resume, progress=not args.no_progress)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
