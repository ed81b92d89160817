"""The demo, measured (issue 15): does `bash scripts/demo.sh STYLE` give the bundled pluck that instrument's
harmonic series, held through each note?

    python -m benchmarks.demo_check [--model BUNDLE] [--styles violin,cello,flute] [--out benchmarks/results/demo_check]
    python -m benchmarks.demo_check --source sine_vibrato --styles violin --out benchmarks/results/demo_check_whistle

The demo clip (demo/plucked_melody.flac) is a Karplus-Strong melody written in scripts/make_demo_clip.py,
whose score (``notes()``) is known. For each style the same notes are rendered through the FluidR3
SoundFont as the true target (as the dataset's targets are, diffusion/data.py), and the demo is restyled
exactly as scripts/demo.sh does (``stylehost render demo/plucked_melody.flac OUT --style STYLE``, the
shipped default unless ``--model``). Scored at the model rate (24 kHz) on the score's monophonic note
frames (diffusion/harmonics.py):

- **harmonic distance** of the render, and of the unchanged source, to the true target;
- **hold**: per note, the mean prominence of harmonics 1..10 over the last third of its note frames minus
  that over the first third (dB; 0 = the series holds, negative = it dies away), averaged over notes, for
  the render, the pluck and the target. A pluck decays; a bowed violin holds.

``--source NAME`` plays the same score on one of diffusion/synth_sources.py's sources instead (e.g.
``sine_vibrato``, the whistle of the issue's done-when), written to a 24 kHz WAV and restyled by the same
``stylehost render``: the source column is then that source.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from diffusion.data import DEFAULT_SOUNDFONTS, Clip, Note, RenderConfig, render_font
from diffusion.errors import StylehostError
from diffusion.harmonics import HarmonicConfig, harmonic_distance, harmonic_profile, note_frames
from diffusion.styles import get_style
from diffusion.synth_sources import SOURCES

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo" / "plucked_melody.flac"
SR = 24000  # the model rate: where the metric is defined
VELOCITY = 90


def demo_notes() -> list[Note]:
    """The demo's score, from the script that wrote the clip."""
    spec = importlib.util.spec_from_file_location("make_demo_clip", REPO / "scripts" / "make_demo_clip.py")
    if spec is None or spec.loader is None:
        raise StylehostError("cannot load scripts/make_demo_clip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [Note(pitch, start, end, VELOCITY) for pitch, start, end in module.notes()]


def _mono_24k(path: Path) -> np.ndarray:
    import soxr

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    return mono if rate == SR else soxr.resample(mono, rate, SR).astype(np.float32)


def target_render(notes: list[Note], style: str, samples: int) -> np.ndarray:
    """The score through FluidR3's instrument for ``style``: the true target."""
    clip = Clip(id="demo", piece="demo", part=0, split="test", samples=samples, transpose=0, tempo_scale=1.0,
                notes=notes)
    cfg = RenderConfig(out_dir=Path(tempfile.gettempdir()), sample_rate=SR)
    return render_font([clip], (get_style(style),), DEFAULT_SOUNDFONTS["fluidr3"], cfg)[("demo", style)]


def hold_db(audio: np.ndarray, notes: list[Note], cfg: HarmonicConfig | None = None) -> float:
    """Mean over notes of (prominence in the last third of its frames - in the first third), dB."""
    cfg = cfg or HarmonicConfig()
    prominence = harmonic_profile(audio, notes, SR, cfg)
    starts, _ = note_frames(notes, len(audio), SR, cfg)
    drops = []
    for n in notes:
        own = np.flatnonzero((starts / SR >= n.start) & ((starts + cfg.n_fft) / SR <= n.end + 1e-9))
        if len(own) < 6:
            continue
        third = len(own) // 3
        with np.errstate(all="ignore"):
            first, last = np.nanmean(prominence[own[:third]]), np.nanmean(prominence[own[-third:]])
        if np.isfinite(first) and np.isfinite(last):
            drops.append(last - first)
    return float(np.mean(drops)) if drops else float("nan")


def restyle(style: str, model: str | None, out: Path, source: Path = DEMO) -> None:
    """scripts/demo.sh's render, in a subprocess as the user runs it."""
    cmd = [sys.executable, "-m", "stylehost", "render", str(source), str(out), "--style", style]
    if model:
        cmd += ["--model", model]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise StylehostError(f"render failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")


def synth_source(name: str, notes: list[Note], path: Path) -> np.ndarray:
    """The demo's score played by a synthesized source (seed 0), as long as the demo clip, written to ``path``."""
    if name not in SOURCES:
        raise StylehostError(f"unknown source {name!r}; choose demo or one of {', '.join(SOURCES)}")
    samples = len(_mono_24k(DEMO))
    audio = SOURCES[name](notes, samples, SR, 0).astype(np.float32)
    sf.write(str(path), audio, SR, subtype="FLOAT")
    return audio


def check(styles: list[str], model: str | None, source_name: str = "demo") -> dict[str, Any]:
    notes = demo_notes()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if source_name == "demo":
            source_path, source = DEMO, _mono_24k(DEMO)
        else:
            source_path = Path(tmp) / f"{source_name}.wav"
            source = synth_source(source_name, notes, source_path)
        for style in styles:
            wav = Path(tmp) / f"demo_{style}.wav"
            restyle(style, model, wav, source_path)
            output = _mono_24k(wav)
            target = target_render(notes, style, len(source))
            n = min(len(output), len(source), len(target))
            output, src, target = output[:n], source[:n], target[:n]
            rows.append({"style": style,
                         "harmonic_db": {"render": harmonic_distance(output, target, notes, SR),
                                         "unchanged source": harmonic_distance(src, target, notes, SR)},
                         "hold_db": {"render": hold_db(output, notes), "unchanged source": hold_db(src, notes),
                                     "true target": hold_db(target, notes)}})
    return {"model": model or "models/default", "source": source_name, "notes": len(notes), "rows": rows,
            "command": " ".join(["python", "-m", "benchmarks.demo_check", *sys.argv[1:]])}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"`{report['command']}` ({report['model']}, source {report.get('source', 'demo')}, "
             f"{report['notes']} notes)", "",
             "| style | harmonic dist: render | harmonic dist: unchanged source | hold: render | hold: source | "
             "hold: true target |", "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        h, d = r["harmonic_db"], r["hold_db"]
        lines.append(f"| {r['style']} | {h['render']:.2f} dB | {h['unchanged source']:.2f} dB | "
                     f"{d['render']:+.2f} dB | {d['unchanged source']:+.2f} dB | {d['true target']:+.2f} dB |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.demo_check", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="bundle (default: the shipped default, as demo.sh)")
    p.add_argument("--styles", default="violin,cello,flute")
    p.add_argument("--source", default="demo",
                   help="demo (the bundled pluck, as demo.sh) or a synthesized source playing its score: "
                        + ", ".join(SOURCES))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/demo_check"),
                   help="writes OUT.json and OUT.md")
    args = p.parse_args(argv)
    try:
        report = check([s.strip() for s in args.styles.split(",") if s.strip()], args.model, args.source)
    except StylehostError as exc:
        print(f"stylehost: error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
