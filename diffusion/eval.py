"""`stylehost eval`: the model against two baselines on the test split, for every ordered style pair.

For each ordered pair (source style -> target style, source != target) a few test clips are
restyled, streamed exactly as the live engine runs the model (``stream.py``), and compared with
the true target rendering of the same notes:

- log-mel distance (dB, after loudness matching; lower is better),
- chroma similarity (pitch content kept; higher is better),
- style accuracy (the style classifier's verdict on the output; higher is better),
- Frechet distance between classifier embeddings of outputs and of real target renderings
  (per target style, then averaged; lower is better; blurry averages score badly here).

Baselines: the source unchanged, and the best static EQ from source to target computed from the
pair itself (an oracle EQ, resynthesised with the source-phase path). The model's audio goes through
the same spectrogram-to-audio path the engine runs: the GuideDiff stage with ``--stage`` (a bundle's
``guide.pt``), else source-phase resynthesis.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from diffusion.causal import CausalDenoiser
from diffusion.causal_stream import causal_stream_audio
from diffusion.classifier import ClassifierConfig, embed_clip, load_classifier, train_classifier
from diffusion.config import parse_list
from diffusion.data import Note, load_manifest
from diffusion.errors import StylehostError
from diffusion.excitation import GATED, ExcitationConfig, check_stage_reach
from diffusion.guide import GuideStage, load_stage
from diffusion.harmonics import harmonic_distance
from diffusion.input_gate import GateConfig
from diffusion.metrics import chroma_similarity, frechet_distance, log_mel_distance, static_eq_log_gain
from diffusion.model import Denoiser
from diffusion.provenance import command_line, git_commit
from diffusion.resynth import PhaseGuidedResynth
from diffusion.spectrogram import same_features
from diffusion.stream import StreamConfig, resynthesize, stream_audio

SYSTEMS = ("source", "static_eq", "model")
METRICS = ("log_mel_db", "harmonic_db", "chroma", "style_acc", "frechet")
PAIR_METRICS = ("log_mel_db", "harmonic_db", "chroma", "style_acc")  # per (clip, pair); Frechet needs a population


@dataclass(frozen=True)
class EvalConfig:
    clips_per_pair: int = 3
    split: str = "test"
    seed: int = 0


def _read(data_dir: Path, entry: dict[str, str]) -> np.ndarray:
    audio, _ = sf.read(Path(data_dir) / entry["path"], dtype="float32")
    return audio


def evaluate(
    denoisers: dict[str, tuple[Denoiser, StreamConfig]],
    data_dir: Path,
    classifier_path: Path,
    cfg: EvalConfig = EvalConfig(),
    progress: bool = True,
    stage: GuideStage | None = None,
    excitation: dict[str, ExcitationConfig | None] | None = None,
    hears: dict[str, str] | None = None,
    gate: GateConfig | None = None,
) -> dict[str, Any]:
    """Score each named (denoiser, stream config) plus the two baselines; returns a JSON-able report.
    ``stage`` resynthesises the models' predictions as the engine does with a bundle's GuideDiff stage;
    ``excitation`` {suffix: config}: each model is scored once per entry, its stage shaping the source
    (None) or its harmonic excitation (diffusion/excitation.py), named model + suffix. ``hears`` {name:
    denoiser input}: what each model was trained to hear (default "source"); one hearing the excitation is
    scored only with an excitation entry, as the engine plays it. ``gate``: the models hearing "gated" play
    with this input gate (diffusion/input_gate.py)."""
    excitation = excitation or {"": None}
    from tqdm import tqdm

    manifest = load_manifest(data_dir)
    clips = [c for c in manifest["clips"] if c["split"] == cfg.split]
    if not clips:
        raise StylehostError(f"no {cfg.split} clips in {data_dir}")
    classifier, cinfo = load_classifier(classifier_path)
    frames = ClassifierConfig(**cinfo["config"]).window_frames
    first = next(iter(denoisers.values()))[0]
    spec = first.cfg.spectrogram
    if stage is not None and not same_features(stage.spec, spec):  # its own resynthesis pair is its business
        raise StylehostError("the GuideDiff stage was trained for other features than the model's; "
                             "use the guide.pt of the model's own bundle")
    styles = [s for s in first.cfg.styles if s in manifest["styles"] and s in cinfo["styles"]]
    resynth = PhaseGuidedResynth(spec)
    transform = resynth.transform
    rng = np.random.default_rng(cfg.seed)
    systems = ("source", "static_eq", *(name + suffix for name in denoisers for suffix in excitation))
    scores: dict[tuple[str, str, str], list[dict[str, float]]] = defaultdict(list)
    embeddings: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    real: dict[str, list[np.ndarray]] = defaultdict(list)

    def logmel(audio: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return transform.log_mel(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None])[0].numpy()

    for clip in clips:  # real target renderings: the Frechet reference set, per style
        for style in styles:
            audio = _read(data_dir, clip["audio"]["fluidr3"][style])
            real[style].append(embed_clip(classifier, logmel(audio), frames)[1])
    pairs = [(s, t) for s in styles for t in styles if s != t]
    start = time.time()
    for src, tgt in tqdm(pairs, desc="eval", disable=not progress):
        chosen = rng.choice(len(clips), size=min(cfg.clips_per_pair, len(clips)), replace=False)
        for index in chosen:
            clip = clips[int(index)]
            source = _read(data_dir, clip["audio"]["fluidr3"][src])
            target = _read(data_dir, clip["audio"]["fluidr3"][tgt])
            notes = [Note(*n) for n in clip.get("notes", [])]  # datasets rendered before issue 15 have none
            gain = torch.from_numpy(static_eq_log_gain(logmel(source), logmel(target))).float()
            outputs = {"source": source, "static_eq": resynthesize(resynth, source, lambda s, g=gain: s + g)}
            for name, (denoiser, scfg) in denoisers.items():
                style_vec = denoiser.style_vector({tgt: 1.0})
                heard = (hears or {}).get(name, "source")
                for suffix, exc in excitation.items():
                    if heard != "source" and exc is None:
                        raise StylehostError(f"{name} hears {heard!r}, which needs the excitation: --excitation on")
                    if isinstance(denoiser, CausalDenoiser):  # a streaming model, played as its processor plays it
                        if stage is None:
                            raise StylehostError(f"{name} is a causal streaming model: pass its --stage")
                        outputs[name + suffix] = causal_stream_audio(
                            denoiser, stage, source, style_vec, emit=scfg.emit, first_frame=1 - spec.n_fft // spec.hop,
                            steps=scfg.steps, strength=scfg.strength, sampler=scfg.sampler, seed=scfg.seed,
                            excitation=exc)
                    else:
                        outputs[name + suffix] = stream_audio(denoiser, resynth, source, style_vec, scfg, stage, exc,
                                                              heard, gate if heard == GATED else None)
            for name, out in outputs.items():
                probs, emb = embed_clip(classifier, logmel(out), frames)
                embeddings[name, tgt].append(emb)
                scores[name, src, tgt].append({
                    "log_mel_db": log_mel_distance(out, target, transform),
                    "harmonic_db": harmonic_distance(out, target, notes, spec.sample_rate) if notes else float("nan"),
                    "chroma": chroma_similarity(out, target, spec),
                    "style_acc": float(np.mean(probs.argmax(1) == cinfo["styles"].index(tgt))),
                })
    return _report(systems, styles, pairs, scores, embeddings, real, cfg, time.time() - start, cinfo)


def _report(systems, styles, pairs, scores, embeddings, real, cfg, seconds, cinfo) -> dict[str, Any]:
    """Aggregate per target style and overall; Frechet is per target style (needs a population)."""
    per_style: dict[str, dict[str, dict[str, float]]] = {}
    for name in systems:
        per_style[name] = {}
        for tgt in styles:
            rows = [r for (n, s, t), rs in scores.items() if n == name and t == tgt for r in rs]
            entry = {m: _mean([r[m] for r in rows]) for m in PAIR_METRICS}
            entry["frechet"] = frechet_distance(np.concatenate(embeddings[name, tgt]), np.concatenate(real[tgt]))
            per_style[name][tgt] = entry
    overall = {name: {m: _mean([per_style[name][t][m] for t in styles]) for m in METRICS} for name in systems}
    per_pair = {f"{s}->{t}": {name: {m: _mean([r[m] for r in scores[name, s, t]]) for m in PAIR_METRICS}
                              for name in systems}
                for s, t in pairs}
    return {"split": cfg.split, "clips_per_pair": cfg.clips_per_pair, "pairs": len(pairs), "seed": cfg.seed,
            "seconds": round(seconds, 1), "classifier_val_accuracy": cinfo["val_accuracy"],
            "overall": overall, "per_target_style": per_style, "per_pair": per_pair}


def _mean(values: list[float]) -> float:
    """Mean over the finite values (harmonic distance is NaN for a clip without monophonic note frames)."""
    v = np.asarray(values, dtype=np.float64)
    return float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")


def markdown_table(report: dict[str, Any]) -> str:
    """Overall table plus the model-vs-baseline margins per target style."""
    systems = list(report["overall"])
    lines = ["| system | log-mel dist (dB) ↓ | harmonic dist (dB) ↓ | chroma sim ↑ | style acc ↑ | Frechet ↓ |",
             "|---|---|---|---|---|---|"]
    for name in systems:
        o = report["overall"][name]
        lines.append(f"| {name} | {o['log_mel_db']:.2f} | {o.get('harmonic_db', float('nan')):.2f} | "
                     f"{o['chroma']:.3f} | {o['style_acc']:.3f} | {o['frechet']:.2f} |")
    models = [s for s in systems if s not in ("source", "static_eq")]
    for model in models:
        lines += ["", f"Per target style, {model} (margin vs source / vs static EQ on log-mel dB; style acc):", "",
                  "| target | model dB | vs source | vs static EQ | harmonic dB | style acc | Frechet |",
                  "|---|---|---|---|---|---|---|"]
        for tgt, row in report["per_target_style"][model].items():
            src = report["per_target_style"]["source"][tgt]["log_mel_db"]
            eq = report["per_target_style"]["static_eq"][tgt]["log_mel_db"]
            lines.append(f"| {tgt} | {row['log_mel_db']:.2f} | {src - row['log_mel_db']:+.2f} | "
                         f"{eq - row['log_mel_db']:+.2f} | {row.get('harmonic_db', float('nan')):.2f} | "
                         f"{row['style_acc']:.3f} | {row['frechet']:.2f} |")
    return "\n".join(lines) + "\n"


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, action="append", default=None,
                   help="model file(s) to score (repeatable; default: models/default/model.pt)")
    p.add_argument("--data", type=Path, default=Path("data/paired"), help="rendered dataset folder")
    p.add_argument("--classifier", type=Path, default=Path("models/style_classifier.pt"))
    p.add_argument("--train-classifier", action="store_true", help="(re)train the style classifier first")
    p.add_argument("--steps", default="2", help="sampler steps per window; a list ('1,2,4') scores each")
    p.add_argument("--sampler", default=None,
                   help="euler | heun | consistency (default: the one the model file names, else euler)")
    p.add_argument("--stage", type=Path, default=None,
                   help="GuideDiff stage file (a bundle's guide.pt): the models' audio goes through it, as in the "
                        "engine; default: source-phase resynthesis")
    p.add_argument("--stage-steps", type=int, default=1, help="restoration steps of --stage")
    p.add_argument("--excitation", default="off", choices=["off", "on", "both"],
                   help="the stage shapes the source (off), its harmonic excitation (on), or score both")
    p.add_argument("--excitation-lag", type=int, default=1, choices=(0, 1),
                   help="hops the harmonic excitation runs behind the input, as live (ExcitationConfig.lag_hops; "
                        "default 1); 0 lets a stage with no after-frame play at --lookahead 0")
    p.add_argument("--gate", type=Path, default=None,
                   help="play every one-window model gated with this input gate (the JSON `stylehost gate-fit --out` "
                        "writes): per call the input or its excitation, as the gate judges the input; needs "
                        "--excitation on")
    p.add_argument("--strength", default="1.0", help="transfer strength; a list ('1.0,0.7') scores each")
    p.add_argument("--emit", type=int, default=4, help="frames emitted per window (the engine's stride)")
    p.add_argument("--lookahead", default=None,
                   help="play window models with this many look-ahead frames, fewer than trained (one hop of "
                        "latency each); a list ('2,1') scores each; default: the model's own")
    p.add_argument("--window", default=None,
                   help="play window models on this many frames per call, fewer than trained (a call costs about "
                        "its length); a list ('32,16') scores each; default: the model's own")
    p.add_argument("--clips-per-pair", type=int, default=EvalConfig.clips_per_pair)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/eval"), help="folder for eval.json and eval.md")
    p.add_argument("--bundle", type=Path, default=None,
                   help="also write the table into this bundle's manifest ('eval') and record the first "
                        "--steps/--strength and --emit as its recommended defaults")


def cli_eval(args: argparse.Namespace) -> int:
    from diffusion.checkpoint import load_checkpoint, load_denoiser, meta_source_input, model_sampler

    if args.train_classifier or not args.classifier.exists():
        info = train_classifier(args.data, args.classifier)
        print(f"style classifier: val accuracy {info['val_accuracy']:.3f} -> {args.classifier}")
    paths = args.model or [Path("models/default/model.pt")]
    steps_list = parse_list(args.steps, int, "steps")
    strengths = parse_list(args.strength, float, "strength")
    lookaheads: list[int | None] = [*parse_list(args.lookahead, int, "lookahead")] if args.lookahead else [None]
    windows: list[int | None] = [*parse_list(args.window, int, "window")] if args.window else [None]
    variants = [(st, sg, la, w) for st in steps_list for sg in strengths for la in lookaheads for w in windows]
    denoisers, hears = {}, {}
    for p in paths:
        name = Path(p).parent.name if Path(p).stem == "model" else Path(p).stem
        heard = meta_source_input(load_checkpoint(p).get("meta"))
        played = {(la, w): load_denoiser(p).eval().play_with_lookahead(la).play_with_window(w)
                  for la in lookaheads for w in windows}
        for st, sg, la, w in variants:
            tail = ("" if la is None else f" L={la}") + ("" if w is None else f" W={w}")
            label = name if len(variants) == 1 else f"{name} {st}-step s={sg:g}{tail}"
            denoisers[label] = (played[la, w], StreamConfig(emit=args.emit, steps=st, strength=sg,
                                                         sampler=args.sampler or model_sampler(p), seed=args.seed))
            hears[label] = heard
    gate = None
    if args.gate is not None:
        if args.excitation != "on" or args.stage is None:
            raise StylehostError("--gate chooses between the input and its excitation: pass --excitation on and "
                                 "a --stage")
        try:
            gate = GateConfig.from_dict(json.loads(Path(args.gate).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise StylehostError(f"cannot read the input gate {args.gate}: {exc}") from exc
        for label, heard in hears.items():
            if heard != "source":
                raise StylehostError(f"--gate: {label} was trained to hear {heard!r}; a gate is for models hearing "
                                     "the input")
            hears[label] = GATED
    stage = load_stage(args.stage, steps=args.stage_steps).eval() if args.stage is not None else None
    if stage is not None and args.excitation != "off":
        for label, (d, _) in denoisers.items():
            check_stage_reach(stage.after, d.cfg.lookahead, label, args.excitation_lag)
    harmonic = ExcitationConfig(lag_hops=args.excitation_lag)
    choices: dict[str, dict[str, ExcitationConfig | None]] = {
        "off": {"": None}, "on": {"": harmonic}, "both": {"": None, " + excitation": harmonic}}
    excitation = choices[args.excitation]
    report = evaluate(denoisers, args.data, args.classifier,
                      EvalConfig(clips_per_pair=args.clips_per_pair, split=args.split, seed=args.seed), stage=stage,
                      excitation=excitation, hears=hears, gate=gate)
    report["excitation"] = args.excitation
    report["excitation_lag"] = args.excitation_lag
    report["denoiser_input"] = hears
    report["input_gate"] = None if gate is None else {"path": str(args.gate), "fit": gate.fit}
    report["resynthesis"] = ({"stage": str(args.stage), "steps": args.stage_steps} if stage is not None
                             else "source-phase")
    report["stream"] = {name: {"emit": c.emit, "steps": c.steps, "strength": c.strength, "sampler": c.sampler,
                               "lookahead": d.cfg.lookahead, "window": d.cfg.window}
                        for name, (d, c) in denoisers.items()}
    report["command"] = command_line()
    report["git_commit"] = git_commit()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "eval.json").write_text(json.dumps(report, indent=1))
    table = markdown_table(report)
    (args.out / "eval.md").write_text(table)
    print(table)
    if args.bundle is not None:
        from export.bundle import update_manifest

        summary = {k: report[k] for k in ("split", "clips_per_pair", "pairs", "seed", "overall", "per_target_style",
                                          "classifier_val_accuracy", "stream", "resynthesis", "command",
                                          "git_commit")}
        defaults = {"steps": variants[0][0], "strength": variants[0][1], "emit": args.emit}
        update_manifest(args.bundle, {"eval": {**summary, "table_md": table}, "defaults": defaults})
        print(f"wrote the eval table and defaults {defaults} into {args.bundle}/manifest.json")
    return 0
