"""`stylehost guide-report`: the spectrogram-to-audio stages compared on the test split (issue 8).

Systems: source-phase iSTFT (PhaseGuidedResynth, the first path), RTISI-LA with a few iterations
(phase.py), and the learned stage (guide.py) at 1 and 2 InDI steps. Each is scored twice against
the true target rendering of the same notes:

- ``oracle``: fed the TRUE target log-mel (the stage's own quality, no denoiser errors);
- ``model``: fed the shipped denoiser's predictions, streamed exactly as the engine runs them
  (stream.stream_contexts: every window's own prediction of the frames it emits and of the context
  the stage reads), i.e. the end-to-end quality.

Figures: log-mel distance (dB, metrics.log_mel_distance), multi-resolution STFT distance
(guide_loss.mrstft_distance), harmonic distance (dB, harmonics.harmonic_distance: the comb of the first
10 harmonics on the monophonic frames of the notes the manifest stores; NaN for a dataset rendered
before issue 15, which stores none, and averaged over the pairs that have it), ms per call of the
stage's ONNX graph (ONNX Runtime CPU, 1 intra-op thread, batch 1, ``emit`` frames; median and p99) and
the latency it adds (frames it reads beyond the model window's look-ahead). Pairs: random (clip, source
style, target style != source) of the test split, fluidr3 on both sides as in ``stylehost eval``,
cropped to their first ``seconds``.

Input (issue 15): a stage trained with ``excitation=true`` (guide_train.py) restores the frames of the
source's harmonic excitation (excitation.py, computed over the whole crop), not the source's; the
learned-stage rows feed it those (``excitation``; the CLI's ``--excitation auto`` reads it from the stage
file), as stream.stream_audio does. The denoiser still sees the source's log-mel, and the source-phase
and RTISI-LA baselines keep the source. ``systems[name]["input"]`` records which one each system read.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import nn

from diffusion.data import Note, load_manifest
from diffusion.errors import StylehostError
from diffusion.excitation import ExcitationConfig, excite
from diffusion.features import SpectrogramConfig, SpectrogramTransform
from diffusion.guide import GuideConfig, GuideStage, load_stage, restore_windows
from diffusion.guide_loss import mrstft_distance
from diffusion.harmonics import harmonic_distance
from diffusion.metrics import log_mel_distance
from diffusion.model import Denoiser
from diffusion.phase import RtisiLa, rtisi_clip
from diffusion.provenance import command_line, git_commit
from diffusion.stream import StreamConfig, stream_contexts

BUDGET_MS = 1.5  # per-call budget of the stage on the dev CPU (issue 8)
MAX_ADDED_LATENCY_MS = 10.0


def _time_onnx(module: nn.Module, inputs: tuple[torch.Tensor, ...], calls: int = 300) -> dict[str, float]:
    """Export ``module`` to a temporary ONNX file and time batch-1 calls in ORT (CPU, 1 thread)."""
    from export.onnx import OPSET, ort_session, time_session

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stage.onnx"
        names = [f"in{i}" for i in range(len(inputs))]
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, inputs, str(path), input_names=names, opset_version=OPSET, dynamo=False)
        feeds = {n: t.numpy() for n, t in zip(names, inputs, strict=True)}
        p50, p99 = time_session(ort_session(path), feeds, calls, warmup=30)
    return {"ms_p50": p50, "ms_p99": p99}


class _SourcePhase(nn.Module):
    """The bundle's source-phase resynth graph (export.graphs.FrameResynth), for timing."""

    def __init__(self, denoiser: Denoiser) -> None:
        super().__init__()
        from export.graphs import build_modules

        self.inner = build_modules(denoiser)["resynth"]

    def forward(self, frames: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        return self.inner(frames, pred)


def systems_of(stage: GuideStage | None, rtisi_iters: list[int], lookahead: int, rtisi_lookahead: int,
               stage_steps: list[int], excitation: bool = False) -> dict[str, dict[str, Any]]:
    """name -> {kind, steps/iterations, before, after, input} of every compared system; ``input`` is the
    audio whose frames it restores: "source", or "excitation" for the learned stage when ``excitation``."""
    out: dict[str, dict[str, Any]] = {"source-phase iSTFT": {"kind": "source", "before": 0, "after": 0,
                                                             "input": "source"}}
    for k in rtisi_iters:
        out[f"RTISI-LA {k} it, LA {rtisi_lookahead}"] = {"kind": "rtisi", "iterations": k, "before": 0,
                                                         "after": rtisi_lookahead, "input": "source"}
    if stage is not None:
        for s in stage_steps:
            out[f"GuideDiff stage {s} step{'s' if s > 1 else ''}"] = {
                "kind": "stage", "steps": s, "before": s * stage.cfg.context, "after": s * stage.cfg.lookahead,
                "input": "excitation" if excitation else "source"}
    for v in out.values():
        v["added_latency_frames"] = max(0, v["after"] - lookahead)
    return out


def _run(system: dict[str, Any], stage: GuideStage | None, rtisi: dict[int, RtisiLa], wave: torch.Tensor,
         contexts: torch.Tensor, before: int, emit: int, spec: SpectrogramConfig) -> np.ndarray:
    """One system on one clip; ``contexts`` (W, mels, before + emit + after_max) per-window log-mel."""
    b, a = system["before"], system["after"]
    ctx = contexts[:, :, before - b : before + emit + a]
    if system["kind"] == "rtisi":
        return rtisi_clip(rtisi[system["iterations"]], wave.numpy(), ctx, emit)
    return restore_windows(runner_of(system, stage, spec), wave, ctx, emit).numpy()


def runner_of(system: dict[str, Any], stage: GuideStage | None, spec: SpectrogramConfig) -> GuideStage:
    """The stage at the system's step count; 0 steps (the start alone) is source-phase iSTFT."""
    if system["kind"] == "source":
        return GuideStage(spec, GuideConfig(), steps=0).eval()
    if stage is None:
        raise StylehostError("the learned stage's rows need --stage")
    runner = GuideStage(stage.spec, stage.cfg, steps=system["steps"])
    runner.net = stage.net
    return runner.eval()


def _read(data_dir: Path, clip: dict[str, Any], style: str) -> np.ndarray:
    return sf.read(Path(data_dir) / clip["audio"]["fluidr3"][style]["path"], dtype="float32")[0]


def crop_notes(notes: list[Note], start: float, seconds: float) -> list[Note]:
    """The notes of the crop [start, start + seconds) of a clip, in the crop's time (shifted by ``start``).

    Notes wholly outside the crop are dropped; one that straddles an edge keeps its true times (a start
    before 0 is an attack before the crop: its frames there are sustain, not onset), and the harmonic
    metric only takes frames that lie inside the audio it is given.
    """
    end = start + seconds
    return [Note(n.pitch, n.start - start, n.end - start, n.velocity) for n in notes if n.end > start and n.start < end]


def nan_mean(values: np.ndarray) -> float:
    """Mean over the finite values; NaN when there are none (the harmonic metric without notes)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    return float(v[finite].mean()) if finite.any() else float("nan")


def oracle_contexts(logmel: torch.Tensor, emit: int, before: int, after: int, floor: float) -> torch.Tensor:
    """(mels, F) true log-mel -> (W, mels, before + emit + after) windows as stream_contexts lays them out."""
    mels, frames = logmel.shape
    count = -(-frames // emit)
    padded = torch.full((mels, before + count * emit + after), floor)
    padded[:, before : before + frames] = logmel
    index = torch.arange(count)[:, None] * emit + torch.arange(before + emit + after)[None]
    return padded[:, index].permute(1, 0, 2)


def guide_report(denoiser: Denoiser, stage: GuideStage | None, data_dir: Path, *, pairs: int = 24,
                 seconds: float = 4.0, emit: int = 2, steps: int = 1, strength: float = 0.7,
                 rtisi_iters: tuple[int, ...] = (2, 8), rtisi_lookahead: int = 2, stage_steps: tuple[int, ...] = (1, 2),
                 seed: int = 0, sampler: str = "euler", progress: bool = True,
                 excitation: ExcitationConfig | None = None) -> dict[str, Any]:
    """The comparison (module docstring). ``excitation``: the learned-stage systems restore the frames of the
    source crop's harmonic excitation with this config (a stage trained with ``excitation=true``)."""
    from tqdm import tqdm

    mcfg = denoiser.cfg
    spec = mcfg.spectrogram
    manifest = load_manifest(data_dir)
    clips = [c for c in manifest["clips"] if c["split"] == "test"]
    if not clips:
        raise StylehostError(f"no test clips in {data_dir}")
    styles = [s for s in mcfg.styles if s in manifest["styles"]]
    excite_stage = excitation is not None and stage is not None
    systems = systems_of(stage, list(rtisi_iters), mcfg.lookahead, rtisi_lookahead, list(stage_steps),
                         excite_stage)
    before = max(v["before"] for v in systems.values())
    after = max(v["after"] for v in systems.values())
    if after > mcfg.lookahead:
        raise StylehostError(f"a system reads {after} frames ahead; the model window has {mcfg.lookahead}")
    rtisi = {k: RtisiLa(spec, k, rtisi_lookahead).eval() for k in rtisi_iters}
    scfg = StreamConfig(emit=emit, steps=steps, strength=strength, sampler=sampler, seed=seed)
    rng = np.random.default_rng(seed)
    floor = float(np.log(spec.log_floor))
    scores: dict[str, dict[str, list[tuple[float, float, float]]]] = {"oracle": {}, "model": {}}
    without_notes = 0  # pairs whose clip stores no notes (a dataset rendered before issue 15)
    t0 = time.time()
    for _ in tqdm(range(pairs), desc="guide-report", disable=not progress):
        clip = clips[int(rng.integers(len(clips)))]
        src, tgt = rng.choice(len(styles), size=2, replace=False)
        n = int(seconds * spec.sample_rate)
        source, target = (_read(data_dir, clip, styles[i])[:n] for i in (src, tgt))
        wave = torch.from_numpy(np.ascontiguousarray(source))
        inputs_audio = {"source": wave}
        if excitation is not None and stage is not None:  # the stage's input: the whole crop's excitation
            inputs_audio["excitation"] = torch.from_numpy(
                excite(source, stage.spec.sample_rate, stage.spec.hop, excitation))
        if "notes" in clip:  # crops are the clip's first `seconds`: notes shift by 0, later ones drop
            notes = crop_notes([Note(*x) for x in clip["notes"]], 0.0, len(source) / spec.sample_rate)
        else:
            notes, without_notes = [], without_notes + 1
        with torch.no_grad():
            transform = SpectrogramTransform(spec)
            src_logmel = transform.log_mel(wave[None])[0]
            tgt_logmel = transform.log_mel(torch.from_numpy(np.ascontiguousarray(target))[None])[0]
            model_ctx = stream_contexts(denoiser, src_logmel, denoiser.style_vector({styles[tgt]: 1.0}), scfg,
                                        before, after)
        inputs = {"oracle": oracle_contexts(tgt_logmel, emit, before, after, floor), "model": model_ctx}
        for cond, ctx in inputs.items():
            for name, system in systems.items():
                with torch.no_grad():
                    out = _run(system, stage, rtisi, inputs_audio[system["input"]], ctx, before, emit, spec)
                harmonic = harmonic_distance(out, target, notes, spec.sample_rate) if notes else float("nan")
                scores[cond].setdefault(name, []).append(
                    (log_mel_distance(out, target, transform), mrstft_distance(out, target), harmonic))
    seconds_taken = time.time() - t0
    timing = time_systems(denoiser, stage, systems, rtisi, emit)
    hop_ms = 1000.0 * spec.hop / spec.sample_rate
    table = {}
    for name, system in systems.items():
        row = {"added_latency_ms": system["added_latency_frames"] * hop_ms, **timing[name]}
        for cond in ("oracle", "model"):
            vals = np.array(scores[cond][name])
            row[f"{cond}_log_mel_db"] = float(vals[:, 0].mean())
            row[f"{cond}_mrstft"] = float(vals[:, 1].mean())
            row[f"{cond}_harmonic_db"] = nan_mean(vals[:, 2])
        table[name] = row
    per_pair = {cond: {name: [list(v) for v in vals] for name, vals in by.items()} for cond, by in scores.items()}
    base = np.array(per_pair["model"]["source-phase iSTFT"])[:, 1]
    for name, row in table.items():  # paired end-to-end MR-STFT difference to source-phase iSTFT
        diff = np.array(per_pair["model"][name])[:, 1] - base
        row["model_mrstft_vs_source_phase"] = float(diff.mean())
        row["model_mrstft_vs_source_phase_stderr"] = float(diff.std(ddof=1) / np.sqrt(len(diff))) if pairs > 1 else 0.0
    chosen, margins = choose(table, systems, per_pair["model"])
    measured = int(np.isfinite(np.array(per_pair["oracle"]["source-phase iSTFT"])[:, 2]).sum())
    if without_notes == pairs:
        note = ("the dataset stores no notes (rendered before issue 15): no harmonic distance (NaN); "
                "re-render it with `stylehost data render` to measure it")
    elif without_notes:
        note = f"{without_notes} of {pairs} pairs' clips store no notes: the harmonic distance averages the others"
    else:
        note = None
    return {"per_pair": per_pair, "per_pair_columns": ["log_mel_db", "mrstft", "harmonic_db"],
            "choice_margins": margins,
            "excitation": excitation.to_dict() if excitation is not None and excite_stage else None,
            "harmonic": {"pairs_measured": measured, "pairs_without_notes": without_notes, "note": note},
            "split": "test", "pairs": pairs, "seconds_per_clip": seconds, "seed": seed,
            "stream": {"emit": emit, "steps": steps, "strength": strength, "sampler": sampler},
            "rtisi_lookahead": rtisi_lookahead, "systems": systems, "table": table, "chosen": chosen,
            "budget_ms": BUDGET_MS, "max_added_latency_ms": MAX_ADDED_LATENCY_MS,
            "timing_runtime": "onnxruntime CPU, 1 intra-op thread, batch 1", "wall_seconds": round(seconds_taken, 1)}


def time_systems(denoiser: Denoiser, stage: GuideStage | None, systems: dict[str, dict[str, Any]],
                 rtisi: dict[int, RtisiLa], emit: int) -> dict[str, dict[str, float]]:
    spec = denoiser.cfg.spectrogram
    g = torch.Generator().manual_seed(0)
    k = spec.n_fft // spec.hop
    out = {}
    for name, system in systems.items():
        n = emit + system["before"] + system["after"]
        frames = 0.1 * torch.randn(1, n, spec.n_fft, generator=g)
        pred = torch.randn(1, spec.n_mels, n, generator=g) - 4.0
        if system["kind"] == "source":
            out[name] = _time_onnx(_SourcePhase(denoiser).eval(), (frames, pred))
        elif system["kind"] == "rtisi":
            committed = 0.01 * torch.randn(1, k - 1, spec.n_fft, generator=g)
            out[name] = _time_onnx(rtisi[system["iterations"]], (committed, frames, pred))
        else:
            out[name] = _time_onnx(runner_of(system, stage, spec), (frames, pred))
    return out


def choose(table: dict[str, dict[str, float]], systems: dict[str, dict[str, Any]],
           model_pairs: dict[str, list[list[float]]]) -> tuple[str, dict[str, dict[str, float]]]:
    """The default: among systems the engine runs (source-phase or the stage; RTISI-LA is a baseline only,
    it would need per-stream state in the graph) within the ms budget and the latency limit, the cheapest
    one whose end-to-end MR-STFT distance is not measurably worse than the best one's (mean paired
    difference over the pairs <= 2 standard errors). Returns (name, paired differences vs the best)."""
    ok = [n for n, r in table.items() if systems[n]["kind"] != "rtisi" and r["ms_p50"] <= BUDGET_MS
          and r["added_latency_ms"] <= MAX_ADDED_LATENCY_MS]
    best = min(ok, key=lambda n: table[n]["model_mrstft"])
    ref = np.array(model_pairs[best])[:, 1]
    margins = {}
    for name in ok:
        diff = np.array(model_pairs[name])[:, 1] - ref
        margins[name] = {"mean_diff_vs_best": float(diff.mean()),
                         "stderr": float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0}
    close = [n for n in ok if margins[n]["mean_diff_vs_best"] <= 2 * margins[n]["stderr"]]
    return min(close, key=lambda n: table[n]["ms_p50"]), margins


def markdown_table(report: dict[str, Any]) -> str:
    s = report["stream"]
    lines = [
        f"Test split, {report['pairs']} random (clip, source style -> target style) pairs of "
        f"{report['seconds_per_clip']:g} s; model predictions streamed with emit {s['emit']}, {s['steps']} step(s), "
        f"strength {s['strength']:g}. ms: {report['timing_runtime']}, {s['emit']} frames per call. "
        f"Input: the audio whose frames each system restores ({_input_line(report)}).", "",
        "| system | input | log-mel dB (true log-mel) | MR-STFT (true log-mel) | harmonic dB (true log-mel) "
        "| log-mel dB (model) | MR-STFT (model) | harmonic dB (model) "
        "| MR-STFT (model) vs source-phase, paired mean ± s.e. | ms p50 | ms p99 | added latency ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["table"].items():
        mark = " **(default)**" if name == report["chosen"] else ""
        given = report["systems"][name].get("input", "source")
        lines.append(f"| {name}{mark} | {given} | {r['oracle_log_mel_db']:.2f} | {r['oracle_mrstft']:.3f} | "
                     f"{_db(r.get('oracle_harmonic_db'))} | "
                     f"{r['model_log_mel_db']:.2f} | {r['model_mrstft']:.3f} | {_db(r.get('model_harmonic_db'))} | "
                     f"{r['model_mrstft_vs_source_phase']:+.4f} ± {r['model_mrstft_vs_source_phase_stderr']:.4f} | "
                     f"{r['ms_p50']:.3f} | "
                     f"{r['ms_p99']:.3f} | {r['added_latency_ms']:.0f} |")
    m = report["choice_margins"]
    lines += ["", f"Default: {report['chosen']}: the cheapest system the engine runs, within "
              f"{report['budget_ms']:g} ms and +{report['max_added_latency_ms']:g} ms latency, whose "
              "end-to-end MR-STFT is within 2 standard errors of the best (paired over the pairs): "
              + "; ".join(f"{n} {v['mean_diff_vs_best']:+.4f} ± {v['stderr']:.4f}" for n, v in m.items()) + "."]
    harmonic = report.get("harmonic") or {}
    lines += ["", "Harmonic dB: mean |difference| of the first 10 harmonics' prominence to the target's, on the "
              "monophonic frames of the stored notes (diffusion/harmonics.py), over "
              f"{harmonic.get('pairs_measured', 0)} of {report['pairs']} pairs."
              + (f" Note: {harmonic['note']}." if harmonic.get("note") else "")]
    return "\n".join(lines) + "\n"


def _db(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


def _input_line(report: dict[str, Any]) -> str:
    if report.get("excitation") is None:
        return "every system the source"
    return ("the learned stage the source's harmonic excitation (diffusion/excitation.py, whole crop), "
            "the baselines the source; the denoiser always sees the source")


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=Path("models/default/model.pt"), help="denoiser model file")
    p.add_argument("--stage", type=Path, default=None, help="guide stage file (runs/guide/model.pt)")
    p.add_argument("--data", type=Path, default=Path("data/paired"))
    p.add_argument("--out", type=Path, default=Path("runs/guide-report"), help="folder for report.json / report.md")
    p.add_argument("--pairs", type=int, default=24)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--emit", type=int, default=2)
    p.add_argument("--steps", type=int, default=1, help="denoiser steps (the shipped defaults: 1)")
    p.add_argument("--strength", type=float, default=0.7, help="transfer strength (the shipped defaults: 0.7)")
    p.add_argument("--rtisi", default="2,8", help="RTISI-LA iteration counts to compare")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--excitation", default="auto", choices=["off", "on", "auto"],
                   help="the learned stage restores the source's frames (off) or its harmonic excitation's (on); "
                        "auto: as the stage file was trained (guide-train excitation=true)")
    p.add_argument("--manifest", type=Path, default=None,
                   help="bundle folder whose manifest gets the table as its 'reconstruction' section")


def resolve_excitation(mode: str, stage_path: Path | None) -> ExcitationConfig | None:
    """``--excitation``: off -> None; auto -> the stage file's training config (export.onnx.stage_excitation);
    on -> that config, or the default ExcitationConfig for a stage trained on the source. None without a stage."""
    if mode not in ("off", "on", "auto"):
        raise StylehostError(f"--excitation must be off, on or auto, got {mode!r}")
    if mode == "off" or stage_path is None:
        return None
    from export.onnx import stage_excitation

    trained = stage_excitation(stage_path)
    if trained is None and mode == "auto":
        return None
    if trained is None:
        print(f"note: {stage_path} was trained on the source; --excitation on scores it on the default excitation")
    return ExcitationConfig(**(trained or {}))


def cli_guide_report(args: argparse.Namespace) -> int:
    from diffusion.checkpoint import load_denoiser, model_sampler
    from diffusion.config import parse_list

    torch.set_num_threads(1)
    denoiser = load_denoiser(args.model).eval()
    stage = load_stage(args.stage) if args.stage else None
    excitation = resolve_excitation(args.excitation, args.stage)
    report = guide_report(denoiser, stage, args.data, pairs=args.pairs, seconds=args.seconds, emit=args.emit,
                          steps=args.steps, strength=args.strength,
                          rtisi_iters=tuple(parse_list(args.rtisi, int, "rtisi")), seed=args.seed,
                          sampler=model_sampler(args.model), excitation=excitation)
    report.update({"command": command_line(), "git_commit": git_commit(), "model": str(args.model),
                   "stage": str(args.stage) if args.stage else None, "excitation_mode": args.excitation})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    table = markdown_table(report)
    (args.out / "report.md").write_text(table)
    print(table)
    print(f"default by these figures: {report['chosen']}")
    if args.manifest is not None:
        from export.bundle import update_manifest

        update_manifest(args.manifest, {"reconstruction": {**report, "table_md": table}})
        print(f"wrote the table into {args.manifest}/manifest.json ('reconstruction')")
    return 0
