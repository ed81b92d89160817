"""fp32 against int8 denoiser, played as the engine plays a bundle, on the test split: does int8 cost quality?

    python -m benchmarks.precision --model models/default --out benchmarks/results/precision_default

For every ordered pair of the dataset's styles (source != target) ``--clips-per-pair`` test clips are
restyled through the bundle's own processor (realtime/model_processor.py, the CPU backend, the bundle's
recommended steps/strength/emit) once with each denoiser graph, and scored against the true target: log-mel
distance (dB), harmonic distance (dB, on the clip's notes) and style accuracy (the eval's classifier). Then
the four synthesized sources of the timbre eval (diffusion/synth_sources.py: sources no training data has)
on ``--synth-clips`` test clips, to every target style. Also the log-mel distance of int8 to fp32 itself.
Seeded; writes PREFIX.json and PREFIX.md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from diffusion.classifier import ClassifierConfig, embed_clip, load_classifier
from diffusion.data import Note, load_manifest
from diffusion.features import SpectrogramTransform
from diffusion.harmonics import harmonic_distance
from diffusion.metrics import log_mel_distance
from diffusion.provenance import command_line, git_commit
from diffusion.synth_sources import SOURCES
from export.bundle import load_bundle
from realtime.backends.ort import OrtBackend
from realtime.backends.quantize import offline_stream
from realtime.model_processor import ModelProcessor

PRECISIONS = ("fp32", "int8")
METRICS = ("log_mel_db", "harmonic_db", "style_acc", "int8_vs_fp32_db")


def _read(data_dir: Path, entry: dict[str, Any]) -> np.ndarray:
    audio, _ = sf.read(data_dir / entry["path"], dtype="float32")
    return audio


def run(model: Path, data_dir: Path, classifier_path: Path, clips_per_pair: int, synth_clips: int,
        seed: int) -> dict[str, Any]:
    bundle = load_bundle(model)
    backends = {p: OrtBackend(bundle, "cpu", precision=p) for p in PRECISIONS}
    d = bundle.defaults
    manifest = load_manifest(data_dir)
    clips = [c for c in manifest["clips"] if c["split"] == "test"]
    styles = [s for s in manifest["styles"] if s in bundle.styles]
    classifier, cinfo = load_classifier(classifier_path)
    frames = ClassifierConfig(**cinfo["config"]).window_frames
    transform = SpectrogramTransform(bundle.spectrogram)
    sr = bundle.spectrogram.sample_rate
    rng = np.random.default_rng(seed)

    def logmel(audio: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return transform.log_mel(torch.from_numpy(np.ascontiguousarray(audio))[None])[0].numpy()

    def play(precision: str, audio: np.ndarray, style: str) -> np.ndarray:
        proc = ModelProcessor(bundle, backends[precision], emit=int(d["emit"]))
        proc.set_params(style_mix={style: 1.0}, steps=int(d["steps"]), strength=float(d["strength"]))
        return offline_stream(proc, audio)

    scores: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)  # (group, precision) -> rows

    def score(group: str, source: np.ndarray, target: np.ndarray, style: str, notes: list[Note]) -> None:
        outs = {p: play(p, source, style) for p in PRECISIONS}
        between = log_mel_distance(outs["int8"], outs["fp32"], transform)
        for p, out in outs.items():
            probs, _ = embed_clip(classifier, logmel(out), frames)
            scores[group, p].append({
                "log_mel_db": log_mel_distance(out, target, transform),
                "harmonic_db": harmonic_distance(out, target, notes, sr) if notes else float("nan"),
                "style_acc": float(np.mean(probs.argmax(1) == cinfo["styles"].index(style))),
                "int8_vs_fp32_db": between,
            })

    start = time.time()
    for src in styles:
        for tgt in styles:
            if src == tgt:
                continue
            for i in rng.choice(len(clips), size=min(clips_per_pair, len(clips)), replace=False):
                clip = clips[int(i)]
                notes = [Note(*n) for n in clip.get("notes", [])]
                score("SoundFont sources", _read(data_dir, clip["audio"]["fluidr3"][src]),
                      _read(data_dir, clip["audio"]["fluidr3"][tgt]), tgt, notes)
    for i in rng.choice(len(clips), size=min(synth_clips, len(clips)), replace=False):
        clip = clips[int(i)]
        notes = [Note(*n) for n in clip.get("notes", [])]
        for name, make in SOURCES.items():
            source = make(notes, clip["samples"], sr, seed).astype(np.float32)
            for tgt in styles:
                score(f"synth: {name}", source, _read(data_dir, clip["audio"]["fluidr3"][tgt]), tgt, notes)
    groups = sorted({g for g, _ in scores}, key=lambda g: (g.startswith("synth"), g))
    table = {g: {p: {m: float(np.nanmean([r[m] for r in scores[g, p]])) for m in METRICS} | {"n": len(scores[g, p])}
                 for p in PRECISIONS} for g in groups}
    return {"model": str(model), "bundle": f"{bundle.name} {bundle.version}", "defaults": d, "split": "test",
            "clips_per_pair": clips_per_pair, "synth_clips": synth_clips, "seed": seed, "styles": styles,
            "classifier_val_accuracy": cinfo.get("val_accuracy"), "table": table,
            "seconds": time.time() - start, "command": command_line(), "git_commit": git_commit()}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"fp32 vs int8 denoiser, {report['bundle']}, test split, played by the engine's processor "
             f"({report['defaults']}); lower is better except style accuracy.", "",
             "| sources | n | log-mel fp32 | log-mel int8 | harmonic fp32 | harmonic int8 | style acc fp32 | "
             "style acc int8 | int8 vs fp32 log-mel |", "|---|---|---|---|---|---|---|---|---|"]
    for group, row in report["table"].items():
        a, b = row["fp32"], row["int8"]
        lines.append(f"| {group} | {a['n']} | {a['log_mel_db']:.2f} | {b['log_mel_db']:.2f} | {a['harmonic_db']:.2f} | "
                     f"{b['harmonic_db']:.2f} | {a['style_acc']:.3f} | {b['style_acc']:.3f} | "
                     f"{a['int8_vs_fp32_db']:.2f} |")
    lines += ["", f"Command: `{report['command']}` (commit {report['git_commit'][:7]})."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=Path("models/default"))
    p.add_argument("--data", type=Path, default=Path("data/paired"))
    p.add_argument("--classifier", type=Path, default=Path("models/style_classifier.pt"))
    p.add_argument("--clips-per-pair", type=int, default=1)
    p.add_argument("--synth-clips", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/precision"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    report = run(args.model, args.data, args.classifier, args.clips_per_pair, args.synth_clips, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    text = markdown(report)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
