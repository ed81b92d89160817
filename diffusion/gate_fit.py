"""Fit the input gate (diffusion/input_gate.py) on the training split and write it into a bundle.

Two classes of training-source windows, drawn exactly as training draws sources (``PairWindows.example``,
the source augmentation included): SoundFont renders of the clip (either font, any style; a share of
them two clips' lines summed, so chords stay on the input) are class 0, "an instrument the model knows";
random voices of the synthesized family (``synth_augment``, not the evaluation's fixed generators) playing
the clip's notes are class 1. An L2-regularised logistic regression (Newton steps, numpy) separates them;
the regularisation is chosen on the validation split's windows, and the report gives both splits'
accuracy per class. Nothing here sees the test split or the evaluation's synthesized sources.

Labels ``benefit`` (``--labels benefit``) ask the question the gate is for instead: which input gives the
bundle's own denoiser the lower log-mel error to the true target? Each drawn window (the same two kinds)
goes through the denoiser twice, hearing the input and hearing its excitation; the label is "the
excitation wins", weighted by by how many dB, so the logistic fit minimises the expected error of a hard
choice rather than telling fonts from oscillators. A plucked synth that the denoiser renders better from
its excitation is then on the excitation side even when it looks like a SoundFont guitar, and a SoundFont
window that the excitation serves better is too. The report gives, per kind and split, the mean error of
always the input, always the excitation, the gate (its soft weight blending the two inputs, as live) and
the per-window oracle.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffusion.augment import PREROLL_SECONDS, AugmentConfig
from diffusion.distill import window_distances_db
from diffusion.errors import StylehostError
from diffusion.excitation import ExcitationConfig, excite_window
from diffusion.features import SpectrogramTransform
from diffusion.input_gate import GateConfig, InputGate, window_features
from diffusion.model import Denoiser, ModelConfig
from diffusion.pairs import PairWindows, load_clips
from diffusion.provenance import git_commit
from diffusion.synth_augment import SynthAugmentConfig

LAMBDAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
LABELS = ("domain", "benefit")  # SoundFont vs synthesized; or which input the denoiser does better with


@dataclass(frozen=True)
class GateFitConfig:
    """How many windows and how the gate glides once fitted."""

    windows: int = 4000  # per split, half of each class
    p_duet: float = 0.25  # share of SoundFont windows that are two clips' lines summed
    tau_s: float = 0.15
    seed: int = 0
    labels: str = "domain"  # one of LABELS
    batch: int = 64  # windows per denoiser call (labels "benefit")


@dataclass(frozen=True)
class DenoiserRun:
    """How the bundle plays its denoiser (labels "benefit" score the inputs with it)."""

    model: Denoiser
    excitation: ExcitationConfig
    steps: int = 1
    sampler: str = "consistency"
    strength: float = 1.0


def draw_waves(clips: list, cfg: ModelConfig, n: int, p_duet: float, seed: int,
               keep_preroll: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, int, bool]]:
    """``n`` (source wave, target wave, target style, synthesized) draws as training draws sources, alternating
    SoundFont and synthesized voices; a share ``p_duet`` of SoundFont ones are two clips' lines summed (the
    target both lines' targets in one style, summed). The source ``keep_preroll`` samples longer."""
    pw = PairWindows(clips, cfg, 1, (seed,), AugmentConfig(), synth=SynthAugmentConfig(p_synth=1.0))
    rng = np.random.default_rng(seed)
    for i in range(n):
        synth = bool(i % 2)
        src, tgt, style = pw.example(rng, keep_preroll=keep_preroll, synth=synth)
        if not synth and rng.random() < p_duet:
            src2, tgt2, _ = pw.example(rng, keep_preroll=keep_preroll, synth=False, target_style=style)
            src, tgt = 0.5 * (src + src2), 0.5 * (tgt + tgt2)
        yield src, tgt, style, synth


def gate_windows(clips: list, cfg: ModelConfig, n: int, p_duet: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n', 2 n_mels) features and (n',) labels of ``n`` drawn windows (silent ones dropped), alternating
    class 0 (SoundFont) and 1 (synthesized voice)."""
    transform = SpectrogramTransform(cfg.spectrogram)
    feats, labels = [], []
    for wave, _, _, synth in draw_waves(clips, cfg, n, p_duet, seed):
        with torch.no_grad():
            logmel = transform.log_mel(torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None])[0].numpy()
        f = window_features(logmel)
        if f is not None:
            feats.append(f)
            labels.append(float(synth))
    return np.stack(feats).astype(np.float64), np.asarray(labels)


@dataclass(frozen=True)
class BenefitWindows:
    """Drawn windows with both inputs' log-mel and the denoiser's error (dB) hearing each."""

    source: torch.Tensor  # (n, n_mels, T) natural-log mel of the input
    excitation: torch.Tensor  # the same of its harmonic excitation (its last lag hops silent, as live)
    target: torch.Tensor
    style: torch.Tensor  # (n,) target style index
    synth: np.ndarray  # (n,) bool: a synthesized voice (else SoundFont, solo or duet)
    err_input: np.ndarray  # (n,) dB
    err_excitation: np.ndarray

    @property
    def benefit(self) -> np.ndarray:
        """dB the excitation saves over the input (negative: the input is better)."""
        return self.err_input - self.err_excitation


def denoiser_errors(run: DenoiserRun, source: torch.Tensor, target: torch.Tensor, style: torch.Tensor,
                    batch: int) -> np.ndarray:
    """(n,) mean |log-mel| distance (dB) of the denoiser's output to the target, per window (seed 0 per batch)."""
    out = [window_distances_db(run.model, {"source": source[i : i + batch], "target": target[i : i + batch],
                                           "style": style[i : i + batch]}, run.steps, run.sampler, run.strength)
           for i in range(0, len(source), batch)]
    return torch.cat(out).numpy().astype(np.float64)


def benefit_windows(clips: list, run: DenoiserRun, n: int, p_duet: float, seed: int, batch: int) -> BenefitWindows:
    """``n`` windows drawn by ``draw_waves``, each scored by the denoiser hearing the input and hearing the
    input's excitation."""
    cfg = run.model.cfg
    spec = cfg.spectrogram
    pre, length = int(PREROLL_SECONDS * spec.sample_rate), spec.num_samples(cfg.window)
    srcs, excs, tgts, styles, synths = [], [], [], [], []
    for src, tgt, style, synth in draw_waves(clips, cfg, n, p_duet, seed, keep_preroll=pre):
        exc = excite_window(src, spec.sample_rate, spec.hop, run.excitation)
        srcs.append(src[-length:])
        excs.append(exc[-length:].astype(np.float32))
        tgts.append(tgt)
        styles.append(style)
        synths.append(synth)
    transform = SpectrogramTransform(spec)
    with torch.no_grad():
        source = transform.log_mel(torch.from_numpy(np.stack(srcs).astype(np.float32)))
        excitation = transform.log_mel(torch.from_numpy(np.stack(excs)))
        target = transform.log_mel(torch.from_numpy(np.stack(tgts).astype(np.float32)))
    style_t = torch.tensor(styles)
    return BenefitWindows(source, excitation, target, style_t, np.asarray(synths),
                          denoiser_errors(run, source, target, style_t, batch),
                          denoiser_errors(run, excitation, target, style_t, batch))


def fit_logistic(x: np.ndarray, y: np.ndarray, lam: float, iters: int = 50,
                 sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Newton's method on the (sample-weighted) mean log-loss + lam/2 |w|^2 (bias unpenalised); x already
    standardised."""
    n, d = x.shape
    a = np.hstack([x, np.ones((n, 1))])
    # audit: gate-fit-sample-weight
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64) / np.mean(sample_weight)
    w = np.zeros(d + 1)
    reg = np.full(d + 1, lam)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -60, 60)))
        grad = a.T @ (sw * (p - y)) / n + reg * w
        hess = (a * (sw * p * (1 - p))[:, None]).T @ a / n + np.diag(reg + 1e-9)
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


GateInputs = list[tuple[np.ndarray | None, float]]  # per window: its gate features and its loudest value


def gate_inputs(source: torch.Tensor) -> GateInputs:
    """What the gate reads of each (n, n_mels, T) input window (features at GateConfig's default active_db and
    shape_db, as every fitted gate uses), computed once for all the gates scored on them."""
    return [(window_features(w), float(w.max())) for w in source.numpy()]


def gate_raw_weights(gate: InputGate, inputs: GateInputs) -> np.ndarray:
    """(n,) raw (unsmoothed) gate weights, as the processor takes them (``InputGate.raw_weight``)."""
    return np.array([gate.weight_of(f, peak) for f, peak in inputs], dtype=np.float64)


def benefit_report(gate: InputGate, win: BenefitWindows, run: DenoiserRun | None, batch: int,
                   inputs: GateInputs | None = None) -> dict[str, Any]:
    """Mean error (dB) per kind of window: always the input, always the excitation, the gate's soft weight
    (``linear``: the two errors mixed by the weight; ``blended``: the denoiser run on the blended input, as
    live, only when ``run`` is given), and the per-window oracle choice. ``inputs``: ``gate_inputs`` of
    ``win.source`` when already computed."""
    p = gate_raw_weights(gate, gate_inputs(win.source) if inputs is None else inputs)
    blended = None
    if run is not None:
        mix = win.source + torch.from_numpy(p.astype(np.float32))[:, None, None] * (win.excitation - win.source)
        blended = denoiser_errors(run, mix, win.target, win.style, batch)
    out: dict[str, Any] = {}
    for kind, mask in (("soundfont", ~win.synth), ("synth", win.synth), ("all", np.ones_like(win.synth))):
        ei, ee, pk = win.err_input[mask], win.err_excitation[mask], p[mask]
        row = {"windows": int(mask.sum()), "input_db": float(ei.mean()), "excitation_db": float(ee.mean()),
               "gate_linear_db": float(((1 - pk) * ei + pk * ee).mean()), "oracle_db": float(np.minimum(ei, ee).mean()),
               "excitation_wins": float(np.mean(ee < ei)), "mean_weight": float(pk.mean())}
        if blended is not None:
            row["gate_blended_db"] = float(blended[mask].mean())
        out[kind] = row
    return out


def fit_benefit_gate(data_dir: Path, run: DenoiserRun, fit: GateFitConfig, progress: bool = False) -> GateConfig:
    """Labels "benefit": fit on the training split's scored windows, choose the L2 weight by the validation
    split's expected error (the ``linear`` mix), and measure the chosen gate's blended error on validation."""
    cfg = run.model.cfg
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    say(f"drawing and scoring {fit.windows} training windows")
    train = benefit_windows(load_clips(data_dir, cfg, "train"), run, fit.windows, fit.p_duet, fit.seed, fit.batch)
    say(f"drawing and scoring {fit.windows // 2} validation windows")
    val = benefit_windows(load_clips(data_dir, cfg, "val"), run, fit.windows // 2, fit.p_duet, fit.seed + 1,
                          fit.batch)
    train_in, val_in = gate_inputs(train.source), gate_inputs(val.source)
    keep = np.array([f is not None for f, _ in train_in])
    x = np.stack([f for f, _ in train_in if f is not None]).astype(np.float64)
    gain = train.benefit[keep]
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    best: tuple[float, GateConfig, float] | None = None
    for lam in LAMBDAS:
        w, b = fit_logistic((x - mean) / scale, (gain > 0).astype(np.float64), lam,
                            sample_weight=np.abs(gain) + 1e-3)
        gate = GateConfig(tuple(mean.tolist()), tuple(scale.tolist()), tuple(w.tolist()), b, tau_s=fit.tau_s)
        expected = benefit_report(InputGate(gate, 1.0), val, None, fit.batch, val_in)["all"]["gate_linear_db"]
        say(f"lambda {lam:g}: val expected error {expected:.3f} dB")
        if best is None or expected < best[0]:
            best = (expected, gate, lam)
    assert best is not None
    _, gate, lam = best
    g = InputGate(gate, 1.0)
    info = {"labels": "benefit", "lambda": lam, "train": benefit_report(g, train, None, fit.batch, train_in),
            "val": benefit_report(g, val, run, fit.batch, val_in), "windows_per_split": fit.windows,
            "p_duet": fit.p_duet,
            "seed": fit.seed, "data": str(data_dir), "git_commit": git_commit(),
            "denoiser": {"steps": run.steps, "sampler": run.sampler, "strength": run.strength}}
    return GateConfig(gate.mean, gate.scale, gate.weights, gate.bias, tau_s=gate.tau_s, fit=info)


def add_gate_fit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="the paired dataset (train and val splits)")
    p.add_argument("--bundle", type=Path, required=True, help="bundle whose model config (mel bands) the gate fits")
    p.add_argument("--out", type=Path, required=True, help="the gate and its fit report, JSON")
    p.add_argument("--write", action="store_true",
                   help="also write it into the bundle's manifest (section input_gate, denoiser_input gated)")
    p.add_argument("--windows", type=int, default=GateFitConfig.windows)
    p.add_argument("--labels", choices=LABELS, default=GateFitConfig.labels,
                   help="domain: SoundFont vs synthesized windows; benefit: which input the bundle's denoiser "
                        "does better with, weighted by how much")
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
    denoiser = load_denoiser(bundle.path / "model.pt")
    cfg = denoiser.cfg
    if cfg.source_channels != 1:
        raise StylehostError(f"{args.bundle}'s denoiser hears two windows already; the gate is for one-window models")
    fit = GateFitConfig(windows=args.windows, tau_s=args.tau, seed=args.seed, labels=args.labels)
    if fit.labels == "benefit":
        d = bundle.defaults
        run = DenoiserRun(denoiser, ExcitationConfig(**bundle.excitation),
                          steps=int(d["steps"]), sampler=bundle.sampler_name, strength=float(d["strength"]))
        gate = fit_benefit_gate(args.data, run, fit, progress=True)
    else:
        gate = fit_gate(args.data, cfg, fit, progress=True)
    command = " ".join(["stylehost", "gate-fit", *sys.argv[2:]]) if sys.argv[1:2] == ["gate-fit"] else ""
    gate = GateConfig(gate.mean, gate.scale, gate.weights, gate.bias, tau_s=gate.tau_s,
                      fit={**gate.fit, "command": command})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(gate.to_dict(), indent=1) + "\n")
    val = gate.fit["val"]
    if fit.labels == "benefit":
        for kind in ("soundfont", "synth"):
            v = val[kind]
            print(f"val {kind}: input {v['input_db']:.2f} dB, excitation {v['excitation_db']:.2f}, gated "
                  f"{v['gate_blended_db']:.2f} (weight {v['mean_weight']:.2f}), oracle {v['oracle_db']:.2f}")
        print(f"lambda {gate.fit['lambda']:g}; wrote {args.out}")
    else:
        print(f"val: SoundFont windows on the input {val['soundfont_accuracy']:.3f}, synthesized voices on the "
              f"excitation {val['synth_accuracy']:.3f} (lambda {gate.fit['lambda']:g}); wrote {args.out}")
    if args.write:
        update_manifest(bundle.path, {"input_gate": gate.to_dict(), "denoiser_input": "gated"})
        print(f"wrote input_gate into {bundle.path / 'manifest.json'}")
    return 0
