"""Calibrating the harmonic-structure metric (issue 15): how far from the true target is each kind of output?

On the test split (pieces never trained on), for each target style and a few clips, the harmonic
distance (``diffusion/harmonics.py``) and the log-mel distance (``diffusion/metrics.py``) to the true
target rendering (FluidR3) of:

- **natural spread**: the same instrument from the other SoundFont (TimGM6mb, which the dataset
  renders for every clip and style, for the source side of training). Two real instruments of the
  same kind: what "close enough" looks like.
- **noise check**: the target plus white noise at ``NOISE_DBFS`` (-70 dBFS, about 12-bit
  dither): how much the metric moves for a change nobody would call a change of timbre.
- **noise comb**: white noise given the target's own log-mel through source-phase resynthesis, a
  spectrum with the target's peaks and no harmonic series at all: the metric must not pass it.
- **unchanged source**: every other style (FluidR3), and the four synthesized sources of
  ``diffusion/synth_sources.py`` rendered from the clip's notes (whistle, pluck, voice, square).
- **piano duet** (with a model): two test clips' piano renderings mixed, against the same two clips'
  target renderings mixed: a polyphonic source with a true target, scored on log-mel distance only
  (the harmonic metric needs one note at a time). A new stage must not make chords worse.
- **static EQ (oracle)**: each of those sources with the best fixed per-band gain towards this
  target, fitted on the pair itself (``metrics.static_eq_log_gain``), through source-phase
  resynthesis, exactly the ``static_eq`` baseline of ``diffusion/eval.py``.
- **oracle log-mel**: each source given the target's own log-mel, as a perfect denoiser would
  predict it, through source-phase resynthesis and (with a bundle) through its GuideDiff stage: the
  best today's spectrogram-to-audio paths can do from that source.
- **today's model** (unless ``--no-model``): the shipped bundle's denoiser and GuideDiff stage,
  streamed as the engine runs them at the bundle's recommended defaults (``stream.stream_audio``,
  with the harmonic excitation when the bundle's manifest has an ``excitation`` section), on the
  first ``--model-clips`` clips: the baseline a new synthesis stage must beat.
- **other bundles** (``--compare NAME=FOLDER``, repeatable): the same rows for another bundle,
  labelled NAME, and its stage's oracle log-mel row (on the excitation when it has one).

The metric is meant to separate the first group from the others: the natural spread should be much
smaller than the unchanged source's distance, and an EQ or a mel gain on the source's own STFT
should not be able to close the gap.

Note ends: datasets rendered since issue 15 store whole notes in the manifest; for older ones, which
keep each clip's onsets and pitches but not when notes end, ``clip_notes`` re-derives the notes from
the music21 corpus exactly as ``data.render_piece`` cut them (same seeded draws). Either way the notes
are checked against the manifest's onsets and pitches (and a re-derived clip against its length and
transposition); a mismatch is an error, never a silent guess.

    python -m benchmarks.timbre --data data/paired --out benchmarks/results/timbre_calibration.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from diffusion.data import Clip, Note, RenderConfig, load_manifest, piece_clips, piece_parts
from diffusion.errors import StylehostError
from diffusion.excitation import GATED, ExcitationConfig, excite
from diffusion.files import write_text_atomic
from diffusion.guide import GuideStage, restore_clip
from diffusion.harmonics import HarmonicConfig, harmonic_distance, note_frames
from diffusion.input_gate import GateConfig
from diffusion.metrics import log_mel_distance, static_eq_log_gain
from diffusion.model import Denoiser
from diffusion.provenance import git_commit
from diffusion.resynth import PhaseGuidedResynth
from diffusion.spectrogram import SpectrogramConfig
from diffusion.stream import StreamConfig, gate_trace, resynthesize, stream_audio
from diffusion.synth_sources import SOURCES

DEFAULT_BUNDLE = Path("models/default")
OTHER_STYLES = "other styles"
NOISE_DBFS = -70.0
DUET_SOURCE = "piano"
DUET_GROUP = "piano duet"  # two lines at once: the polyphonic source, scored on log-mel distance only
SINGLE_GROUPS = ("natural spread", "noise check", "noise comb")  # rows with one source each


@dataclass(frozen=True)
class ModelUnderTest:
    """A bundle's torch weights and how the engine plays them; ``label`` names its rows."""

    label: str
    denoiser: Denoiser
    stream: StreamConfig
    stage: GuideStage | None = None
    excitation: ExcitationConfig | None = None  # the stage shapes the source's harmonic excitation
    denoiser_input: str = "source"  # what the denoiser hears: its training's; "excitation" with --compare-excited
    gate: GateConfig | None = None  # with denoiser_input "gated": the bundle's input gate


@dataclass(frozen=True)
class TimbreConfig:
    clips: int = 3  # test clips per target style (the same clips for every target)
    model_clips: int = 1  # of those, how many today's model restyles (it is the slow row)
    min_note_frames: int = 40  # clips with fewer monophonic note frames are not picked
    seed: int = 0
    split: str = "test"
    targets: tuple[str, ...] | None = None  # target styles to score (default: every style of the dataset)


def render_config(manifest: dict[str, Any], data_dir: Path) -> RenderConfig:
    """The RenderConfig the dataset was rendered with (from the manifest's ``config``)."""
    saved = dict(manifest["config"])
    valid = {f.name for f in fields(RenderConfig)}
    kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in valid}
    kwargs["out_dir"] = Path(data_dir)
    for key in ("target_font", "source_font"):
        if kwargs.get(key) is not None:
            kwargs[key] = Path(kwargs[key])
    return RenderConfig(**kwargs)


def _derive_piece(piece: str, cfg: RenderConfig) -> list[Clip]:
    """The clips ``data.render_piece`` cut from one piece: the same parse, part order and seeded draws."""
    return piece_clips(piece, piece_parts(piece), cfg)


def clip_notes(manifest: dict[str, Any], data_dir: Path, clips: list[dict[str, Any]]) -> dict[str, list[Note]]:
    """{clip id: notes with start and end} for manifest clip records, checked against the manifest."""
    out: dict[str, list[Note]] = {}
    missing = []
    for clip in clips:
        if "notes" in clip:  # a manifest that stores notes (pitch, start, end, velocity) is used as is
            notes = [Note(*n) if isinstance(n, list) else Note(**n) for n in clip["notes"]]
            if Clip(clip["id"], "", 0, "", 0, 0, 1.0, notes).to_record({})["pitches"] != clip["pitches"] or \
                    sorted({round(n.start, 4) for n in notes}) != clip["onsets"]:
                raise StylehostError(f"the notes of clip {clip['id']} disagree with its onsets and pitches: "
                                     "the manifest is damaged; re-render it")
            out[clip["id"]] = notes
        else:
            missing.append(clip)
    if not missing:
        return out
    cfg = render_config(manifest, data_dir)
    for piece in sorted({c["piece"] for c in missing}):
        derived = {c.id: c for c in _derive_piece(piece, cfg)}
        for record in (c for c in missing if c["piece"] == piece):
            found = derived.get(record["id"])
            check = found.to_record({}) if found is not None else {}
            keys = ("onsets", "pitches", "samples", "transpose")
            if found is None or any(check[k] != record[k] for k in keys):
                raise StylehostError(f"cannot re-derive the notes of clip {record['id']} from the corpus "
                                     "(music21 or the renderer changed since the dataset was rendered): re-render it")
            out[record["id"]] = found.notes
    return out


def _read(data_dir: Path, entry: dict[str, Any]) -> np.ndarray:
    audio, _ = sf.read(Path(data_dir) / entry["path"], dtype="float32")
    return audio


def pick_clips(clips: list[dict[str, Any]], notes: dict[str, list[Note]], sr: int, cfg: TimbreConfig) -> list[str]:
    """``cfg.clips`` clip ids with at least ``min_note_frames`` monophonic note frames, seeded order."""
    order = np.random.default_rng(cfg.seed).permutation(len(clips))
    chosen = []
    for i in order:
        clip = clips[int(i)]
        if len(note_frames(notes[clip["id"]], clip["samples"], sr)[0]) >= cfg.min_note_frames:
            chosen.append(clip["id"])
        if len(chosen) == cfg.clips:
            break
    return chosen


def calibrate(data_dir: Path, cfg: TimbreConfig = TimbreConfig(), denoiser: Denoiser | None = None,
              stream: StreamConfig | None = None, stage: GuideStage | None = None,
              hcfg: HarmonicConfig | None = None, progress: bool = True,
              models: tuple[ModelUnderTest, ...] = ()) -> dict[str, Any]:
    """Every (system, source, target, clip) distance, plus rows aggregated per system; JSON-able.

    ``denoiser`` (with its ``stream`` settings and optional GuideDiff ``stage``) adds today's model;
    ``stage`` alone adds the oracle-log-mel row through it. ``models`` adds more bundles, each with its
    own rows. ``hcfg``: the metric (default HarmonicConfig()).
    """
    from tqdm import tqdm

    hcfg = hcfg or HarmonicConfig()

    manifest = load_manifest(data_dir)
    sr = int(manifest["sample_rate"])
    styles = list(manifest["styles"])
    records = [c for c in manifest["clips"] if c["split"] == cfg.split]
    if not records:
        raise StylehostError(f"no {cfg.split} clips in {data_dir}")
    spec = denoiser.cfg.spectrogram if denoiser is not None else SpectrogramConfig(sample_rate=sr)
    if spec.sample_rate != sr:
        raise StylehostError(f"the dataset is at {sr} Hz, the model at {spec.sample_rate} Hz")
    if stage is not None and stage.spec != spec:
        raise StylehostError("the GuideDiff stage was trained for another spectrogram than the model's")
    resynth = PhaseGuidedResynth(spec)
    transform = resynth.transform
    # Re-deriving notes parses every piece: pick among the first few candidates' pieces only.
    shuffled = [records[int(i)] for i in np.random.default_rng(cfg.seed).permutation(len(records))]
    candidates = shuffled[: max(4 * cfg.clips, 8)]
    notes = clip_notes(manifest, data_dir, candidates)
    by_id = {c["id"]: c for c in candidates}
    chosen = pick_clips(candidates, notes, sr, cfg)
    if not chosen:
        raise StylehostError(f"no {cfg.split} clip has {cfg.min_note_frames} monophonic note frames")

    def logmel(audio: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return transform.log_mel(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None])[0].numpy()

    rows: list[dict[str, Any]] = []
    start = time.time()
    targets = list(cfg.targets) if cfg.targets else styles
    unknown = sorted(set(targets) - set(styles))
    if unknown:
        raise StylehostError(f"target styles {unknown} are not in the dataset (it has {', '.join(styles)})")
    jobs = [(cid, tgt) for cid in chosen for tgt in targets]
    synthesized: dict[str, dict[str, np.ndarray]] = {}
    excited: dict[tuple[Any, ...], np.ndarray] = {}
    for cid, tgt in tqdm(jobs, desc="timbre", disable=not progress):
        record = by_id[cid]
        target = _read(data_dir, record["audio"]["fluidr3"][tgt])
        outputs: list[tuple[str, str, np.ndarray]] = []  # (system, source, audio)
        if "timgm6mb" in record["audio"]:
            outputs.append(("natural spread", f"{tgt} (TimGM6mb)", _read(data_dir, record["audio"]["timgm6mb"][tgt])))
        noise = np.random.default_rng([cfg.seed, len(rows)]).standard_normal(len(target)) * 10 ** (NOISE_DBFS / 20)
        outputs.append(("noise check", f"{tgt} + {NOISE_DBFS:g} dBFS noise", (target + noise).astype(np.float32)))
        target_logmel = logmel(target)
        oracle = torch.from_numpy(target_logmel)
        white = np.random.default_rng([cfg.seed, len(rows), 1]).standard_normal(len(target)).astype(np.float32)
        outputs.append(("noise comb", "white noise + target log-mel",
                        resynthesize(resynth, 0.01 * white, lambda s, o=oracle: o)))
        sources = {s: _read(data_dir, record["audio"]["fluidr3"][s]) for s in styles if s != tgt}
        gates: dict[tuple[str, str], float] = {}  # (system, source) -> mean gate weight, for gated models
        if cid not in synthesized:
            synthesized[cid] = {name: make(notes[cid], record["samples"], sr, cfg.seed)
                                for name, make in SOURCES.items()}
        sources.update(synthesized[cid])
        run_model = chosen.index(cid) < cfg.model_clips
        for name, audio in sources.items():
            outputs.append(("unchanged", name, audio))
            gain = torch.from_numpy(static_eq_log_gain(logmel(audio), target_logmel)).float()
            outputs.append(("static EQ", name, resynthesize(resynth, audio, lambda s, g=gain: s + g)))
            outputs.append(("oracle log-mel, source-phase", name, resynthesize(resynth, audio, lambda s, o=oracle: o)))
            if stage is not None:
                with torch.no_grad():
                    wave = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
                    restored = restore_clip(stage, wave, oracle[None])[0].numpy()
                outputs.append(("oracle log-mel, GuideDiff stage", name, restored))
            if run_model and denoiser is not None and stream is not None:
                restyled = stream_audio(denoiser, resynth, audio, denoiser.style_vector({tgt: 1.0}), stream, stage)
                outputs.append(("today's model", name, restyled))
            for m in models:
                if m.stage is not None:
                    if m.excitation is None:
                        shaped = audio
                    else:  # the same source is excited once per clip, not once per target style
                        key = (cid, name, tuple(sorted(m.excitation.to_dict().items())))
                        if key not in excited:
                            excited[key] = excite(audio, sr, spec.hop, m.excitation)
                        shaped = excited[key]
                    with torch.no_grad():
                        wave = torch.from_numpy(np.ascontiguousarray(shaped, dtype=np.float32))[None]
                        outputs.append((f"oracle log-mel, {m.label} stage", name,
                                        restore_clip(m.stage, wave, oracle[None])[0].numpy()))
                if run_model:
                    outputs.append((m.label, name, stream_audio(m.denoiser, resynth, audio,
                                                                m.denoiser.style_vector({tgt: 1.0}), m.stream,
                                                                m.stage, m.excitation, m.denoiser_input, m.gate)))
                    if m.gate is not None:  # how much of the excitation it heard, mean over the clip's windows
                        gates[(m.label, name)] = float(np.mean(gate_trace(m.denoiser, resynth, audio, m.gate,
                                                                          m.stream)))
        for system, source, audio in outputs:
            rows.append({"system": system, "source": source, "target": tgt, "clip": cid,
                         "harmonic_db": harmonic_distance(audio, target, notes[cid], sr, hcfg),
                         "log_mel_db": log_mel_distance(audio, target, transform),
                         **({"gate_weight": gates[(system, source)]} if (system, source) in gates else {})})
        partner = next((c for c in candidates if c["id"] != cid and c["samples"] == record["samples"]), None)
        if DUET_SOURCE in styles and tgt != DUET_SOURCE and partner is not None and run_model:
            # Polyphony with a true target: two test clips' lines played together by the piano, against the
            # same two lines played together by the target instrument. Log-mel distance only (no note is alone).
            duet = 0.5 * (sources[DUET_SOURCE] + _read(data_dir, partner["audio"]["fluidr3"][DUET_SOURCE]))
            duet_target = 0.5 * (target + _read(data_dir, partner["audio"]["fluidr3"][tgt]))
            duets = [("unchanged", duet)]
            if denoiser is not None and stream is not None:
                duets.append(("today's model", stream_audio(denoiser, resynth, duet, denoiser.style_vector({tgt: 1.0}),
                                                            stream, stage)))
            duets += [(m.label, stream_audio(m.denoiser, resynth, duet, m.denoiser.style_vector({tgt: 1.0}), m.stream,
                                             m.stage, m.excitation, m.denoiser_input, m.gate)) for m in models]
            for system, audio in duets:  # harmonic_db: no note is alone
                rows.append({"system": system, "source": DUET_GROUP, "target": tgt, "clip": cid,
                             "harmonic_db": float("nan"),
                             "log_mel_db": log_mel_distance(audio, duet_target, transform)})
    return {"split": cfg.split, "sample_rate": sr, "clips": chosen, "styles": styles, "targets": targets,
            "synth_sources": list(SOURCES), "config": {f.name: getattr(cfg, f.name) for f in fields(cfg)},
            "harmonic_config": {f.name: getattr(hcfg, f.name) for f in fields(hcfg)},
            "seconds": round(time.time() - start, 1), "summary": summarise(rows, styles), "rows": rows}


def _stats(values: list[float]) -> dict[str, float]:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return {"mean": float("nan"), "se": float("nan"), "n": 0}
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return {"mean": float(v.mean()), "se": se, "n": int(len(v))}


def summarise(rows: list[dict[str, Any]], styles: list[str]) -> dict[str, Any]:
    """Per (system, source group): mean ± s.e. of both distances overall and per target style.

    Source groups: "other styles" pools the dataset's styles (FluidR3) as sources; each synthesized
    source is its own group; SINGLE_GROUPS are one group each.
    """
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["system"] in SINGLE_GROUPS:
            key = row["system"]
        else:
            group = OTHER_STYLES if row["source"] in styles else row["source"]
            key = f"{row['system']}: {group}"
        groups[key].append(row)
    out: dict[str, Any] = {}
    for key, members in groups.items():
        out[key] = {m: _stats([r[m] for r in members]) for m in ("harmonic_db", "log_mel_db")}
        out[key]["per_target"] = {t: _stats([r["harmonic_db"] for r in members if r["target"] == t])["mean"]
                                  for t in styles if any(r["target"] == t for r in members)}
        gated = [r["gate_weight"] for r in members if "gate_weight" in r]
        if gated:
            out[key]["gate_weight"] = float(np.mean(gated))
    return out


def markdown(report: dict[str, Any]) -> str:
    """The calibration table (overall) and the harmonic distance per target style."""
    summary, styles = report["summary"], report["targets"]
    others = len(report["styles"]) - 1

    def cell(s: dict[str, float]) -> str:
        return f"{s['mean']:.2f} ± {s['se']:.2f}" if np.isfinite(s["se"]) else f"{s['mean']:.2f}"

    lines = [
        f"Test split, {len(report['clips'])} clips x {len(styles)} target styles (today's model: first "
        f"{report['config']['model_clips']} clip(s)). Distances to the true target (FluidR3 rendering), "
        "mean ± standard error over (clip, target[, source]) rows; lower is closer.", "",
        "Rows: *natural spread* = the same instrument from TimGM6mb; *noise check* = the target plus "
        f"{NOISE_DBFS:g} dBFS white noise; *noise comb* = white noise given the target's log-mel (source-phase): "
        f"no harmonic series; *other styles* = the {others} other dataset styles as sources; *static EQ* = the oracle "
        "fixed per-band gain; *oracle log-mel* = the target's own log-mel as a perfect denoiser would predict it, "
        "through source-phase resynthesis or the shipped GuideDiff stage; *today's model* = the shipped bundle "
        "streamed as the engine runs it.", "",
        "| system: source | harmonic dist (dB) | log-mel dist (dB) | rows |", "|---|---|---|---|"]
    for key, s in summary.items():
        lines.append(f"| {key} | {cell(s['harmonic_db'])} | {cell(s['log_mel_db'])} | {s['harmonic_db']['n']} |")
    gated = {key: s["gate_weight"] for key, s in summary.items() if "gate_weight" in s}
    if gated:
        lines += ["", "Gated models: the excitation's mean share of what the denoiser heard (0 = the input, 1 = its "
                  "excitation; mean over each clip's windows, silence included):", "",
                  "| system: source | gate weight |", "|---|---|"]
        lines += [f"| {key} | {w:.2f} |" for key, w in gated.items()]
    lines += ["", "Harmonic distance (dB) per target style:", "",
              "| system: source | " + " | ".join(styles) + " |", "|---|" + "---|" * len(styles)]
    for key, s in summary.items():
        per = s["per_target"]
        lines.append(f"| {key} | " + " | ".join(f"{per[t]:.1f}" if t in per else "" for t in styles) + " |")
    return "\n".join(lines) + "\n"


def load_model(bundle: Path, label: str = "today's model") -> ModelUnderTest:
    """The bundle's torch weights (model.pt, guide.pt), its recommended stream settings and its excitation."""
    from diffusion.checkpoint import load_checkpoint, load_denoiser, meta_source_input, model_sampler
    from diffusion.guide import load_stage

    manifest = json.loads((bundle / "manifest.json").read_text())
    defaults = manifest.get("defaults", {})
    model_path = bundle / "model.pt"
    denoiser = load_denoiser(model_path).eval()
    if denoiser.cfg.causal is None:  # a bundle exported with --lookahead plays fewer frames than trained
        denoiser.play_with_lookahead(manifest.get("lookahead"))
    stream = StreamConfig(emit=int(defaults.get("emit", manifest.get("emit", 4))), steps=int(defaults.get("steps", 1)),
                          strength=float(defaults.get("strength", 1.0)), sampler=model_sampler(model_path))
    stage_info = manifest.get("resynth_stage")
    stage = None
    if stage_info and (bundle / "guide.pt").is_file():
        stage = load_stage(bundle / "guide.pt", steps=int(stage_info.get("steps", 1))).eval()
    section = manifest.get("excitation")
    excitation = ExcitationConfig(**section) if section is not None and stage is not None else None
    heard = meta_source_input(load_checkpoint(model_path).get("meta"))  # what it was trained to hear
    gate = None
    if manifest.get("denoiser_input") == GATED and excitation is not None:  # played gated (diffusion/input_gate.py)
        heard, gate = GATED, GateConfig.from_dict(manifest["input_gate"])
    return ModelUnderTest(label, denoiser, stream, stage, excitation, heard, gate)


def describe(model: ModelUnderTest, bundle: Path) -> dict[str, Any]:
    s = model.stream
    return {"bundle": str(bundle), "emit": s.emit, "steps": s.steps, "strength": s.strength, "sampler": s.sampler,
            "stage": None if model.stage is None else str(bundle / "guide.pt"),
            "excitation": None if model.excitation is None else model.excitation.to_dict(),
            "denoiser_input": model.denoiser_input,
            "input_gate": None if model.gate is None else model.gate.fit}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("data/paired"), help="rendered dataset folder")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/timbre_calibration.json"),
                   help="JSON report; the Markdown table goes beside it (.md)")
    p.add_argument("--clips", type=int, default=TimbreConfig.clips, help="test clips per target style")
    p.add_argument("--model-clips", type=int, default=TimbreConfig.model_clips,
                   help="clips (of --clips) that today's model restyles")
    p.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="bundle whose model.pt/guide.pt to run")
    p.add_argument("--no-model", action="store_true", help="skip today's model (baselines only)")
    p.add_argument("--compare", action="append", default=[], metavar="NAME=FOLDER",
                   help="also score this bundle, its rows labelled NAME (repeatable)")
    p.add_argument("--compare-excited", action="append", default=[], metavar="NAME=FOLDER",
                   help="also score this bundle with its denoiser fed the excitation's log-mel instead of the "
                        "source's (an experiment; the bundle needs an excitation section)")
    p.add_argument("--targets", default=None, help="comma-separated target styles (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dynamic-range-db", type=float, default=HarmonicConfig.dynamic_range_db,
                   help="the harmonic metric's range under each frame's strongest harmonic")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.clips < 1 or args.model_clips < 0:
        p.error("--clips must be >= 1 and --model-clips >= 0")
    torch.set_num_threads(max(1, args.threads))
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip()) if args.targets else None
    cfg = TimbreConfig(clips=args.clips, model_clips=args.model_clips, seed=args.seed, targets=targets)
    models: list[tuple[ModelUnderTest, Path]] = []
    try:
        if not args.no_model and args.model_clips > 0:
            models.append((load_model(args.bundle), args.bundle))
            for flag, items in (("--compare", args.compare), ("--compare-excited", args.compare_excited)):
                for item in items:
                    name, sep, folder = item.partition("=")
                    if not sep or not name.strip():
                        raise StylehostError(f"{flag} expects NAME=FOLDER, got {item!r}")
                    m = load_model(Path(folder), name.strip())
                    if flag == "--compare-excited":
                        if m.excitation is None:
                            raise StylehostError(f"--compare-excited: {folder} has no excitation section")
                        m = dataclasses.replace(m, denoiser_input="excitation", gate=None)
                    models.append((m, Path(folder)))
        hcfg = HarmonicConfig(dynamic_range_db=args.dynamic_range_db)
        report = calibrate(args.data, cfg, hcfg=hcfg, progress=not args.quiet, models=tuple(m for m, _ in models))
    except StylehostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report["model"] = describe(*models[0]) if models else None
    report["compared"] = {m.label: describe(m, folder) for m, folder in models[1:]}
    report["command"] = " ".join(["python", "-m", "benchmarks.timbre", *(argv if argv is not None else sys.argv[1:])])
    report["git_commit"] = git_commit()
    table = markdown(report)
    write_text_atomic(args.out, json.dumps(report, indent=1) + "\n")
    write_text_atomic(args.out.with_suffix(".md"), "# Harmonic-distance calibration (issue 15)\n\n"
                      f"`{report['command']}`\n\n" + table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
