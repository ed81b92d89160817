"""`stylehost guide-train`: train the GuideDiff-style restoration stage (guide.py) on the paired dataset.

One example is a ``segment``-frame crop of a source rendering (augmented as the teacher's sources
are) and of the true target rendering of the same notes. The conditioning is the TRUE target log-mel,
corrupted on the way in (noise of a random level, blur over time and frequency, a small level
offset) so that the stage tolerates the denoiser's predictions, which it meets in use. The stage
runs the 2-step InDI sampler; the multi-resolution STFT loss (guide_loss.py) is taken on the
overlap-added waveform of both the first estimate (= the 1-step sampler's output) and the second,
against the target waveform over the samples those frames cover completely. The t = 1/2 state is
built from the detached first estimate, as guide.py explains.

Same run-folder conventions as train/distill (and the same loop, ``train.run_loop``):
``checkpoint.pt`` (resumable: re-running the command resumes), ``model.pt`` (EMA weights, what
export and guide-report read), ``config.json``, ``loss.png``; seed, command and commit are in the
provenance of both files.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from diffusion.augment import AugmentConfig
from diffusion.checkpoint import load_checkpoint, save_checkpoint
from diffusion.config import load_config, to_dict
from diffusion.errors import StylehostError
from diffusion.excitation import ExcitationConfig, excite
from diffusion.features import SpectrogramConfig, SpectrogramTransform
from diffusion.guide import (
    GuideConfig,
    GuideStage,
    adapted_state,
    frames_of,
    load_stage,
    overlap_add,
    parameter_count,
    save_stage,
)
from diffusion.guide_loss import mrstft_loss
from diffusion.model import ModelConfig
from diffusion.pairs import PairWindows
from diffusion.provenance import Provenance
from diffusion.synth_augment import SynthAugmentConfig
from diffusion.train import add_run_arguments, load_pairs, plot_history, run_loop

DB_PER_NEPER = 20.0 / math.log(10.0)


@dataclass(frozen=True)
class GuideTrainConfig:
    """The stage's training recipe; saved in every checkpoint and in config.json."""

    guide: GuideConfig = field(default_factory=GuideConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    augment_source: bool = True
    synth: SynthAugmentConfig = field(default_factory=SynthAugmentConfig)  # synthesized sources (issue 15)
    # Shape the source's harmonic excitation (diffusion/excitation.py) instead of the source, as a bundle
    # with an 'excitation' section plays; the denoiser's conditioning still comes from the source.
    excitation: bool = False
    harmonic: ExcitationConfig = field(default_factory=ExcitationConfig)
    # The resynthesis pair (SpectrogramConfig.synthesis_len, issue 17): 0 the symmetric Hann pair, S the
    # low-delay one whose synthesis covers each frame's last S samples; the log-mel features stay Hann.
    synthesis_len: int = 0
    segment: int = 40  # frames per example (divisible by 8: the dataset cutter's window rule)
    train_steps: int = 2  # InDI steps run in training; the loss covers every step's estimate
    steps: int = 3000
    batch_size: int = 8
    lr: float = 2e-3
    warmup: int = 100
    lr_final: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    cond_noise: float = 0.6  # max std (natural log) of Gaussian noise on the conditioning log-mel
    cond_offset: float = 0.35  # max |level offset| (natural log, ~3 dB) of the conditioning
    p_blur: float = 0.5  # probability of a [1,2,1]/4 blur over time and frequency
    p_same_style: float = 0.125
    seed: int = 0
    workers: int = 1
    threads: int = 1  # torch intra-op threads (the dev CPU has 2 cores and shares them)
    val_every: int = 250
    val_windows: int = 32
    checkpoint_every: int = 250
    # Fine-tuning on the denoiser's own predictions: start from the stage file ``init``; for a share
    # ``p_model_cond`` of examples the conditioning is ``denoiser``'s output on the source crop (one window,
    # so ``segment`` must equal its window) at ``model_strength`` / ``model_steps``, towards a random style.
    init: str = ""
    denoiser: str = ""
    p_model_cond: float = 0.5
    model_strength: float = 0.7
    model_steps: int = 1


EXCITATION_PREROLL = 2400  # samples of source before a crop that warm the pitch tracker up (100 ms)


class WaveWindows(PairWindows):
    """PairWindows that yields the waveforms: {'source', 'target': (B, num_samples(segment))}, and with
    ``excitation`` also 'shaped': the source's harmonic excitation, computed with a pre-roll so the pitch
    tracker has heard the source before the crop, as it has live."""

    excitation: ExcitationConfig | None = None

    def batch(self, rng: np.random.Generator, transform: SpectrogramTransform) -> dict[str, torch.Tensor]:
        keep = EXCITATION_PREROLL if self.excitation is not None else 0
        examples = self.draw_examples(rng, keep_preroll=keep)
        out = {"source": torch.from_numpy(np.stack([e[0][keep:] for e in examples])),
               "target": torch.from_numpy(np.stack([e[1] for e in examples])),
               "style": torch.tensor([e[2] for e in examples])}
        if self.excitation is not None:
            spec = self.cfg.spectrogram
            out["shaped"] = torch.from_numpy(np.stack(
                [excite(e[0], spec.sample_rate, spec.hop, self.excitation)[keep:] for e in examples]))
        return out


def corrupt_logmel(logmel: torch.Tensor, cfg: GuideTrainConfig, g: torch.Generator | None = None) -> torch.Tensor:
    """(B, n_mels, N) true target log-mel -> the same with noise, optional blur and a level offset."""
    b = logmel.shape[0]
    out = logmel
    if cfg.p_blur > 0:
        k = torch.tensor([0.25, 0.5, 0.25])
        blurred = nn.functional.conv2d(nn.functional.pad(out[:, None], (1, 1, 1, 1), mode="replicate"),
                                       (k[:, None] * k[None, :])[None, None])[:, 0]
        pick = (torch.rand(b, generator=g) < cfg.p_blur).float()[:, None, None]
        out = pick * blurred + (1 - pick) * out
    std = torch.rand(b, generator=g)[:, None, None] * cfg.cond_noise
    offset = (2 * torch.rand(b, generator=g)[:, None, None] - 1) * cfg.cond_offset
    return out + std * torch.randn(out.shape, generator=g) + offset


def estimates(stage: GuideStage, batch: dict[str, torch.Tensor], cfg: GuideTrainConfig,
              g: torch.Generator | None = None, corrupt: bool = True, steps: int | None = None,
              model_cond: Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor] | None = None,
              ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(output, target) waveforms of each InDI step's clean estimate (index 0: the 1-step output), over
    the samples the estimate's frames cover completely; ``steps=0``: the source-phase start alone."""
    spec = stage.spec
    frames = frames_of(batch["source"], spec)
    shaped = frames_of(batch["shaped"], spec) if "shaped" in batch else frames  # what the stage restores
    logmel = stage.feature_logmel(frames_of(batch["target"], spec))  # the true target's features
    cond = corrupt_logmel(logmel, cfg, g) if corrupt else logmel
    if model_cond is not None:  # the denoiser's prediction for a share of the examples
        pick = (torch.rand(cond.shape[0], generator=g) < cfg.p_model_cond)[:, None, None]
        cond = torch.where(pick, model_cond(frames, batch), cond)
    steps = cfg.train_steps if steps is None else steps
    k, hop, c, la = spec.n_fft // spec.hop, spec.hop, stage.cfg.context, stage.cfg.lookahead
    keep: list = []
    if steps == 0:  # the start over the frames the 1-step estimate covers
        re, im, _, _ = stage.start(shaped, cond)
        keep.append((re[:, :, c : re.shape[2] - la], im[:, :, c : re.shape[2] - la]))
    else:
        stage.restore(shaped, cond, steps=steps, keep=keep, detach_states=True)
    pairs = []
    for i, (re, im) in enumerate(keep):
        first, count = (i + 1) * c, re.shape[2]  # estimate i covers frames [first, first + count)
        wave = overlap_add(stage.synthesize(re, im), hop)
        # Samples every one of whose K frames lies in the estimate: [(first+K-1)*hop, (first+count)*hop).
        target = batch["target"][:, (first + k - 1) * hop : (first + count) * hop]
        pairs.append((wave[:, (k - 1) * hop : count * hop], target))
    return pairs


def guide_losses(stage: GuideStage, batch: dict[str, torch.Tensor], cfg: GuideTrainConfig,
                 g: torch.Generator | None = None, corrupt: bool = True,
                 model_cond: Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor] | None = None,
                 ) -> list[torch.Tensor]:
    """Multi-resolution STFT loss of each InDI step's clean estimate (index 0: the 1-step output)."""
    return [mrstft_loss(out, tgt) for out, tgt in estimates(stage, batch, cfg, g, corrupt, model_cond=model_cond)]


def denoiser_cond(path: Path, stage: GuideStage, cfg: GuideTrainConfig, g: torch.Generator) -> Callable:
    """(frames, batch) -> (B, n_mels, N) the denoiser's restyled log-mel of the source crop (target style)."""
    from diffusion.checkpoint import load_denoiser
    from diffusion.sampling import transfer

    denoiser = load_denoiser(path).eval().requires_grad_(False)
    if denoiser.cfg.window != cfg.segment:
        raise StylehostError(f"fine-tuning on {path} needs segment = its window ({denoiser.cfg.window}), "
                             f"got {cfg.segment}")

    def predict(frames: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            source = stage.feature_logmel(frames)
            onehot = nn.functional.one_hot(batch["style"], len(denoiser.cfg.styles)).float()
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
            return transfer(denoiser, source, denoiser.style_vectors(onehot), strength=cfg.model_strength,
                            steps=cfg.model_steps, seed=seed)

    return predict


@torch.no_grad()
def validate(ema: GuideStage, val: dict[str, torch.Tensor], cfg: GuideTrainConfig) -> dict[str, float]:
    """With the clean target log-mel: MR-STFT loss of the 1- and 2-step stage and of the source-phase start
    on the same samples; log-mel distance (dB, the model's 384-point mel) of the 1-step stage and the start."""
    ema.eval()
    transform = SpectrogramTransform(ema.spec)

    def db(pair: tuple[torch.Tensor, torch.Tensor]) -> float:
        out, tgt = (transform.log_mel(w) for w in pair)
        return float((out - tgt).abs().mean()) * DB_PER_NEPER

    stage = estimates(ema, val, cfg, corrupt=False)
    start = estimates(ema, val, cfg, corrupt=False, steps=0)[0]
    return {"val_loss": float(mrstft_loss(*stage[0])), "val_loss_2step": float(mrstft_loss(*stage[-1])),
            "val_loss_source_phase": float(mrstft_loss(*start)),
            "val_model_db": db(stage[0]), "val_source_db": db(start)}


def train_guide(cfg: GuideTrainConfig, data_dir: Path, out_dir: Path, *, resume: bool = True,
                progress: bool = True) -> GuideStage:
    """Train (or resume) the stage into ``out_dir``; returns the EMA stage (1 step)."""
    out_dir = Path(out_dir)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    model_cfg = ModelConfig(window=cfg.segment, spectrogram=SpectrogramConfig(synthesis_len=cfg.synthesis_len))
    if cfg.train_steps < 1:
        raise StylehostError(f"train_steps must be >= 1, got {cfg.train_steps}")
    train_clips, val_clips = load_pairs(data_dir, model_cfg)
    torch.manual_seed(cfg.seed)
    stage = GuideStage(model_cfg.spectrogram, cfg.guide, steps=1)
    if cfg.init:
        start = load_stage(Path(cfg.init))
        stage.net.load_state_dict(adapted_state(start.cfg, start.net.state_dict(), cfg.guide))
    ema = copy.deepcopy(stage).requires_grad_(False)
    opt = torch.optim.AdamW(stage.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: dict[str, list[Any]] = {"train": [], "val": []}
    step, ckpt_path, saved = 0, out_dir / "checkpoint.pt", None
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        if ckpt.get("config", {}).get("guide") != to_dict(cfg.guide):
            raise StylehostError(f"checkpoint {ckpt_path} was trained with another guide config; "
                                 "use another --out or --no-resume")
        stage.net.load_state_dict(ckpt["model"])
        ema.net.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        step, history, saved = int(ckpt["step"]), ckpt["history"], ckpt.get("provenance")
    provenance = Provenance(saved, cfg.seed, step)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    print(f"guide stage: {parameter_count(stage) / 1e3:.1f} k params; {len(train_clips)} train clips, "
          f"{len(val_clips)} val; from step {step}", flush=True)
    val = {}
    if val_clips:
        vds = WaveWindows(val_clips, model_cfg, cfg.val_windows, (1234,), None)
        vds.excitation = cfg.harmonic if cfg.excitation else None
        val = vds.batch(np.random.default_rng(1234), SpectrogramTransform(model_cfg.spectrogram))
    dataset = WaveWindows(train_clips, model_cfg, cfg.batch_size, (cfg.seed, 0, step),
                          cfg.augment if cfg.augment_source else None, cfg.p_same_style, cfg.synth)
    dataset.excitation = cfg.harmonic if cfg.excitation else None
    loader = DataLoader(dataset, batch_size=None, num_workers=cfg.workers, persistent_workers=cfg.workers > 0,
                        prefetch_factor=4 if cfg.workers else None)
    gen = torch.Generator().manual_seed(cfg.seed * 1009 + step)
    meta_cfg = {"config": to_dict(cfg)}

    model_cond = denoiser_cond(Path(cfg.denoiser), stage, cfg, gen) if cfg.denoiser else None

    def loss_fn(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack(guide_losses(stage, batch, cfg, gen, model_cond=model_cond)).mean()

    def save(at: int) -> None:
        record = provenance.snapshot(at)
        save_checkpoint(ckpt_path, {"kind": "guide-checkpoint", **meta_cfg, "step": at,
                                    "model_config": {**to_dict(cfg.guide), "spectrogram": stage.spec.to_dict()},
                                    "model": stage.net.state_dict(), "ema": ema.net.state_dict(),
                                    "optimizer": opt.state_dict(), "history": history, "provenance": record})
        save_stage(out_dir / "model.pt", ema, {"kind": "guide", "step": at, **meta_cfg, "provenance": record})
        plot_history(history, out_dir / "loss.png", loss_name="multi-resolution STFT loss")

    run_loop(cfg, module=stage, ema=ema, opt=opt, batches=iter(loader), device=torch.device("cpu"),
             loss_fn=loss_fn, step=step, history=history, save_fn=save,
             validate_fn=(lambda: validate(ema, val, cfg)) if val else None, progress=progress)
    print(f"run folder {out_dir}", flush=True)
    return ema.eval()


def add_guide_train_arguments(p: argparse.ArgumentParser) -> None:
    add_run_arguments(p, "GuideTrainConfig, nested 'guide'", "--set steps=500 --set guide.channels=24")


def cli_guide_train(args: argparse.Namespace) -> int:
    cfg = load_config(GuideTrainConfig, args.config, args.overrides)
    train_guide(cfg, args.data, args.out, resume=not args.no_resume, progress=not args.no_progress)
    return 0
