"""Fit the input gate (diffusion/input_gate.py) on the training split and write it into a bundle.

Two classes of training-source windows, drawn exactly as training draws sources (``PairWindows.example``,
the source augmentation included): SoundFont renders of the clip (either font, any style; a share of
them two clips' lines summed, so chords stay on the input) are class 0, "an instrument the model knows";
random voices of the synthesized family (``synth_augment``, not the evaluation's fixed generators) playing
the clip's notes are class 1. An L2-regularised logistic regression (Newton steps, numpy) separates them;
the regularisation is chosen on the validation split's windows, and the report gives both splits'
accuracy per class. Nothing here sees the test split or the evaluation's synthesized sources.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffusion.augment import AugmentConfig
from diffusion.errors import StylehostError
from diffusion.features import SpectrogramTransform
from diffusion.input_gate import GateConfig, InputGate, window_features
from diffusion.model import ModelConfig
from diffusion.pairs import PairWindows, load_clips
from diffusion.provenance import git_commit
from diffusion.synth_augment import SynthAugmentConfig

LAMBDAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class GateFitConfig:
    """How many windows and how the gate glides once fitted."""

    windows: int = 4000  # per split, half of each class
    p_duet: float = 0.25  # share of SoundFont windows that are two clips' lines summed
    tau_s: float = 0.15
    seed: int = 0


def gate_windows(clips: list, cfg: ModelConfig, n: int, p_duet: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n', 2 n_mels) features and (n',) labels of ``n`` drawn windows (silent ones dropped), alternating
    class 0 (SoundFont) and 1 (synthesized voice)."""
    pw = PairWindows(clips, cfg, 1, (seed,), AugmentConfig(), synth=SynthAugmentConfig(p_synth=1.0))
    rng = np.random.default_rng(seed)
    transform = SpectrogramTransform(cfg.spectrogram)
    feats, labels = [], []
    for i in range(n):
        synth = bool(i % 2)
        wave = pw.example(rng, synth=synth)[0]
        if not synth and rng.random() < p_duet:
            wave = 0.5 * (wave + pw.example(rng, synth=False)[0])
        with torch.no_grad():
            logmel = transform.log_mel(torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None])[0].numpy()
        f = window_features(logmel)
        if f is not None:
            feats.append(f)
            labels.append(float(synth))
    return np.stack(feats).astype(np.float64), np.asarray(labels)


def fit_logistic(x: np.ndarray, y: np.ndarray, lam: float, iters: int = 50) -> tuple[np.ndarray, float]:
    """Newton's method on the mean log-loss + lam/2 |w|^2 (bias unpenalised); x already standardised."""
    n, d = x.shape
    a = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.full(d + 1, lam)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -60, 60)))
        grad = a.T @ (p - y) / n + reg * w
        hess = (a * (p * (1 - p))[:, None]).T @ a / n + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w[:-1], float(w[-1])


def scores(gate: InputGate, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy per class and mean raw weight per class, from standardised-by-the-gate features."""
    z = ((x - gate._mean) / gate._scale) @ gate._w + gate.cfg.bias
    p = 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))
    real, synth = y == 0, y == 1
    return {"windows": int(len(y)), "soundfont_accuracy": float(np.mean(p[real] < 0.5)),
            "synth_accuracy": float(np.mean(p[synth] >= 0.5)), "soundfont_mean_weight": float(np.mean(p[real])),
            "synth_mean_weight": float(np.mean(p[synth])),
            "log_loss": float(-np.mean(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12)))}


def fit_gate(data_dir: Path, cfg: ModelConfig, fit: GateFitConfig, progress: bool = False) -> GateConfig:
    """Draw both splits' windows, choose the L2 weight on validation, refit nothing: the chosen fit is it."""
    train_x, train_y = gate_windows(load_clips(data_dir, cfg, "train"), cfg, fit.windows, fit.p_duet, fit.seed)
    val_x, val_y = gate_windows(load_clips(data_dir, cfg, "val"), cfg, fit.windows // 2, fit.p_duet, fit.seed + 1)
    mean, scale = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    best: tuple[float, GateConfig, dict[str, Any]] | None = None
    for lam in LAMBDAS:
        w, b = fit_logistic((train_x - mean) / scale, train_y, lam)
        gate = GateConfig(tuple(mean.tolist()), tuple(scale.tolist()), tuple(w.tolist()), b, tau_s=fit.tau_s)
        g = InputGate(gate, 1.0)
        val = scores(g, val_x, val_y)
        if progress:
            print(f"lambda {lam:g}: val log-loss {val['log_loss']:.4f}, SoundFont {val['soundfont_accuracy']:.3f}, "
                  f"synthesized {val['synth_accuracy']:.3f}", file=sys.stderr)
        if best is None or val["log_loss"] < best[0]:
            best = (val["log_loss"], gate, {"lambda": lam, "train": scores(g, train_x, train_y), "val": val})
    assert best is not None
    _, gate, report = best
    info = {**report, "windows_per_split": fit.windows, "p_duet": fit.p_duet, "seed": fit.seed,
            "data": str(data_dir), "git_commit": git_commit()}
    return GateConfig(gate.mean, gate.scale, gate.weights, gate.bias, tau_s=gate.tau_s, fit=info)


def add_gate_fit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="the paired dataset (train and val splits)")
    p.add_argument("--bundle", type=Path, required=True, help="bundle whose model config (mel bands) the gate fits")
    p.add_argument("--out", type=Path, required=True, help="the gate and its fit report, JSON")
    p.add_argument("--write", action="store_true",
                   help="also write it into the bundle's manifest (section input_gate, denoiser_input gated)")
    p.add_argument("--windows", type=int, default=GateFitConfig.windows)
    p.add_argument("--tau", type=float, default=GateFitConfig.tau_s, help="glide time constant, seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)


def cli_gate_fit(args: argparse.Namespace) -> int:
    from diffusion.checkpoint import load_denoiser
    from export.bundle import load_bundle, update_manifest

    torch.set_num_threads(max(1, args.threads))
    if args.windows < 100:
        raise StylehostError(f"--windows must be >= 100, got {args.windows}")
    bundle = load_bundle(args.bundle)
    if bundle.excitation is None:
        raise StylehostError(f"{args.bundle} has no excitation section: the gate chooses between the input and "
                             "its excitation, so the bundle needs one")
    cfg = load_denoiser(bundle.path / "model.pt").cfg
    if cfg.source_channels != 1:
        raise StylehostError(f"{args.bundle}'s denoiser hears two windows already; the gate is for one-window models")
    gate = fit_gate(args.data, cfg, GateFitConfig(windows=args.windows, tau_s=args.tau, seed=args.seed), progress=True)
    command = " ".join(["stylehost", "gate-fit", *sys.argv[2:]]) if sys.argv[1:2] == ["gate-fit"] else ""
    gate = GateConfig(gate.mean, gate.scale, gate.weights, gate.bias, tau_s=gate.tau_s,
                      fit={**gate.fit, "command": command})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(gate.to_dict(), indent=1) + "\n")
    val = gate.fit["val"]
    print(f"val: SoundFont windows on the input {val['soundfont_accuracy']:.3f}, synthesized voices on the "
          f"excitation {val['synth_accuracy']:.3f} (lambda {gate.fit['lambda']:g}); wrote {args.out}")
    if args.write:
        update_manifest(bundle.path, {"input_gate": gate.to_dict(), "denoiser_input": "gated"})
        print(f"wrote input_gate into {bundle.path / 'manifest.json'}")
    return 0
