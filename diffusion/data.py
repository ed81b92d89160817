"""`stylehost data render`: the paired multi-style dataset, rendered from music21's corpus.

A pair is the same notes played by two instruments. Every clip is rendered once per style with
the target SoundFont (FluidR3 GM) and once per style with a second SoundFont (TimGM6mb) that the
training code uses only on the source side. Reverb and chorus are off; audio is 24 kHz mono FLAC.

Pieces are split train/val/test by a hash of the piece id, so no piece ever spans two splits.
Rendering is parallel over processes (one job = one piece), resumable (a finished job leaves a
record in ``jobs/`` and is skipped on the next run), and writes ``manifest.json`` (per-file sha256
and durations) plus ``summary.md`` (hours per style and split).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from diffusion.errors import StylehostError
from diffusion.files import sha256_file, write_text_atomic
from diffusion.styles import STYLE_NAMES, Style, parse_styles

FORMAT_VERSION = 1
DEFAULT_SOUNDFONTS = {
    "fluidr3": Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    "timgm6mb": Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
}
# Corpus collections with real melodies and parts; each file is one piece.
COLLECTIONS = ("bach", "ryansMammoth", "palestrina", "monteverdi")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class RenderConfig:
    """What to render. Sizes are per style: every style gets the same clips."""

    out_dir: Path
    styles: tuple[str, ...] = STYLE_NAMES
    target_font: Path = DEFAULT_SOUNDFONTS["fluidr3"]
    source_font: Path | None = DEFAULT_SOUNDFONTS["timgm6mb"]
    train_hours: float = 1.2  # hours of training audio per style (per font)
    eval_fraction: float = 0.12  # val and test each get at least this fraction of train_hours
    clip_seconds: float = 6.0
    max_parts_per_piece: int = 2
    max_clips_per_part: int = 3
    sample_rate: int = 24000
    seed: int = 0
    workers: int = max(1, os.cpu_count() or 1)
    tempo_range: tuple[float, float] = (0.8, 1.25)
    collections: tuple[str, ...] = COLLECTIONS

    @classmethod
    def small(cls, out_dir: Path, **overrides: Any) -> RenderConfig:
        """A few short clips per split: enough for tests, seconds to render."""
        base: dict[str, Any] = dict(out_dir=out_dir, train_hours=0.02, eval_fraction=0.2, clip_seconds=4.0,
                                    max_parts_per_piece=1, max_clips_per_part=2, collections=("bach",))
        base.update(overrides)
        return cls(**base)


@dataclass
class Note:
    pitch: int
    start: float  # seconds from the clip's start
    end: float
    velocity: int


@dataclass
class Clip:
    id: str
    piece: str
    part: int
    split: str
    samples: int
    transpose: int
    tempo_scale: float
    notes: list[Note] = field(default_factory=list)

    def to_record(self, audio: dict[str, dict[str, dict[str, str | float]]]) -> dict[str, Any]:
        return {
            "id": self.id, "piece": self.piece, "part": self.part, "split": self.split,
            "samples": self.samples, "transpose": self.transpose, "tempo_scale": self.tempo_scale,
            "onsets": sorted({round(n.start, 4) for n in self.notes}),
            "pitches": [n.pitch for n in sorted(self.notes, key=lambda n: (n.start, n.pitch))],
            # Whole notes (pitch, start, end, velocity): the harmonic metric and the synthesized-source
            # augmentation need note ends, which onsets and pitches alone do not give.
            "notes": [[n.pitch, round(n.start, 4), round(n.end, 4), n.velocity]
                      for n in sorted(self.notes, key=lambda n: (n.start, n.pitch))],
            "audio": audio,
        }


def split_of(piece: str) -> str:
    """Deterministic 80/10/10 split by piece id (never by clip)."""
    h = int(hashlib.sha256(piece.encode()).hexdigest()[:8], 16) % 100
    return "train" if h < 80 else "val" if h < 90 else "test"


def list_pieces(collections: tuple[str, ...], seed: int) -> list[str]:
    """Corpus piece ids ('bach/bwv66.6.mxl'), shuffled deterministically."""
    from music21 import corpus

    pieces = []
    for path in corpus.getPaths():
        rel = str(path).split("/corpus/", 1)[-1]
        if rel.split("/", 1)[0] in collections and rel.endswith((".mxl", ".xml", ".krn", ".abc")):
            pieces.append(rel)
    pieces.sort()
    random.Random(seed).shuffle(pieces)
    return pieces


def transposition(pitches: list[int], styles: tuple[Style, ...], rng: random.Random) -> int:
    """One shift for all styles of a clip: the one that leaves the fewest semitones out of range.

    Ties (and near-ties within 2 semitones of total overshoot) are broken at random so the data
    covers more than one key per melody.
    """
    lo, hi = min(pitches), max(pitches)
    costs = {}
    for shift in range(-36, 37):
        costs[shift] = sum(max(0, s.low - (lo + shift)) + max(0, (hi + shift) - s.high) for s in styles)
    best = min(costs.values())
    return rng.choice([s for s, c in costs.items() if c <= best + 2])


def part_notes(part: Any) -> list[tuple[int, float, float]]:
    """(pitch, start s, end s) of every note in a music21 part; ties merged, chords split."""
    from music21 import chord, note

    out: list[tuple[int, float, float]] = []
    for entry in part.stripTies().flatten().secondsMap:
        el = entry["element"]
        if isinstance(el, note.Note):
            pitches = [el.pitch.midi]
        elif isinstance(el, chord.Chord):
            pitches = [p.midi for p in el.pitches]
        else:
            continue
        start, dur = float(entry["offsetSeconds"]), float(entry["durationSeconds"])
        if dur > 0:
            out.extend((p, start, start + dur) for p in pitches)
    return out


def cut_clips(piece: str, part_index: int, notes: list[tuple[int, float, float]], cfg: RenderConfig,
              rng: random.Random, styles: tuple[Style, ...]) -> list[Clip]:
    """Cut one part into clips of cfg.clip_seconds, with tempo, velocity and transposition drawn once.

    Notes must start at least 0.4 s before a clip's end and are cut 0.1 s before it, so each clip
    holds its notes' attacks and most of their releases. Clips with fewer than 3 notes are dropped.
    """
    if not notes:
        return []
    tempo = rng.uniform(*cfg.tempo_range)
    base_velocity = rng.uniform(55, 110)
    scaled = sorted(((p, s / tempo, e / tempo) for p, s, e in notes), key=lambda n: n[1])
    lead, length = 0.05, cfg.clip_seconds
    first, last = scaled[0][1], max(e for _, _, e in scaled)
    starts = np.arange(first - lead, last, length - 0.5)
    candidates = []
    for k, c0 in enumerate(starts):
        inside = [(p, s - c0, min(e - c0, length - 0.1)) for p, s, e in scaled if c0 <= s < c0 + length - 0.4]
        if len(inside) >= 3:
            candidates.append((k, inside))
    chosen = sorted(rng.sample(candidates, min(cfg.max_clips_per_part, len(candidates))), key=lambda c: c[0])
    clips = []
    for k, inside in chosen:
        shift = transposition([p for p, _, _ in inside], styles, rng)
        phase = rng.uniform(0, 2 * np.pi)
        clip_notes = []
        for p, s, e in inside:
            # A slow swell (phrase dynamics) plus per-note jitter, the same for every style of the clip.
            v = base_velocity + 15 * np.sin(phase + 2 * np.pi * s / 5.0) + rng.gauss(0, 6)
            clip_notes.append(Note(int(np.clip(p + shift, 0, 127)), round(s, 4), round(e, 4), int(np.clip(v, 20, 127))))
        clip_id = f"{piece.replace('/', '-').rsplit('.', 1)[0]}-p{part_index}-c{k}"
        clips.append(Clip(clip_id, piece, part_index, split_of(piece), int(round(length * cfg.sample_rate)),
                          shift, round(tempo, 4), clip_notes))
    return clips


def render_font(clips: list[Clip], styles: tuple[Style, ...], font: Path, cfg: RenderConfig) -> dict:
    """Render every (clip, style) of one piece through one SoundFont in a single FluidSynth run.

    Segments are laid end to end with a 2 s gap so releases never overlap the next segment; one
    process per piece and font keeps FluidSynth's start-up (loading a 140 MB SoundFont) amortised.
    Returns {(clip id, style name): float32 mono audio of exactly clip.samples samples}.
    """
    import pretty_midi

    gap = 2.0
    midi = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    slots: list[tuple[Clip, Style, float]] = []
    instruments = {s.name: pretty_midi.Instrument(program=s.program, name=s.name) for s in styles}
    t = 0.5
    for clip in clips:
        for style in styles:
            for n in clip.notes:
                instruments[style.name].notes.append(pretty_midi.Note(n.velocity, n.pitch, t + n.start, t + n.end))
            slots.append((clip, style, t))
            t += clip.samples / cfg.sample_rate + gap
    midi.instruments.extend(instruments.values())
    # A final controller event keeps FluidSynth rendering until the last segment's release is over.
    instruments[styles[0].name].control_changes.append(pretty_midi.ControlChange(7, 100, t))
    with tempfile.TemporaryDirectory(prefix="stylehost-render-") as tmp:
        mid, wav = Path(tmp) / "clip.mid", Path(tmp) / "out.wav"
        midi.write(str(mid))
        cmd = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(cfg.sample_rate),
               "-O", "float", "-T", "wav", "-F", str(wav), str(font), str(mid)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not wav.exists():
            raise StylehostError(f"fluidsynth failed on {font}: {proc.stderr.strip()[:300]}")
        audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if sr != cfg.sample_rate:
        raise StylehostError(f"fluidsynth wrote {sr} Hz, expected {cfg.sample_rate}")
    mono = audio.mean(axis=1)
    out = {}
    for clip, style, start in slots:
        a = int(round(start * cfg.sample_rate))
        seg = np.zeros(clip.samples, dtype=np.float32)
        piece = mono[a : a + clip.samples]
        seg[: len(piece)] = piece
        out[(clip.id, style.name)] = seg
    return out


def write_flac_atomic(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit FLAC through a temp file and rename, so an interrupted run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    sf.write(str(tmp), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="FLAC")
    os.replace(tmp, path)


def job_record_path(out_dir: Path, piece: str) -> Path:
    return out_dir / "jobs" / (piece.replace("/", "-") + ".json")


def piece_parts(piece: str) -> list[Any]:
    """The music21 parts of a corpus piece (the score itself when it has none)."""
    from music21 import corpus

    score = corpus.parse(piece)
    return list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]


def piece_clips(piece: str, parts: list[Any], cfg: RenderConfig) -> list[Clip]:
    """The clips cut from up to max_parts_per_piece of a piece's parts, with the piece's seeded draws:
    the same clips every time, so benchmarks can re-derive a rendered clip's notes (benchmarks/timbre.py)."""
    styles = parse_styles(",".join(cfg.styles))
    rng = random.Random(f"{cfg.seed}:{piece}")
    order = list(range(len(parts)))
    rng.shuffle(order)
    clips: list[Clip] = []
    for index in sorted(order[: cfg.max_parts_per_piece]):
        try:
            notes = part_notes(parts[index])
        except Exception:  # noqa: BLE001 - a malformed part is skipped, the piece goes on
            notes = []
        clips.extend(cut_clips(piece, index, notes, cfg, rng, styles))
    return clips


def render_piece(piece: str, cfg: RenderConfig) -> dict[str, Any]:
    """One job: parse a piece, cut clips from up to max_parts_per_piece parts, render every font.

    Returns {"piece", "clips": [records], "error": str|None}; the record is also saved in jobs/.
    """
    styles = parse_styles(",".join(cfg.styles))
    record_path = job_record_path(cfg.out_dir, piece)
    try:
        parts = piece_parts(piece)
    except Exception as exc:  # music21 raises many types on odd corpus files; skip the piece
        result: dict[str, Any] = {
            "piece": piece, "clips": [], "error": f"parse failed: {type(exc).__name__}: {exc}"[:300]
        }
        _save_json(record_path, result)
        return result
    clips = piece_clips(piece, parts, cfg)
    fonts = {"fluidr3": cfg.target_font}
    if cfg.source_font is not None:
        fonts["timgm6mb"] = cfg.source_font
    audio_index: dict[str, dict[str, dict[str, dict[str, str | float]]]] = {c.id: {} for c in clips}
    for font_name, font_path in fonts.items():
        if not clips:
            break
        rendered = render_font(clips, styles, font_path, cfg)
        for (clip_id, style_name), audio in rendered.items():
            rel = Path("audio") / font_name / style_name / f"{clip_id}.flac"
            write_flac_atomic(cfg.out_dir / rel, audio, cfg.sample_rate)
            audio_index[clip_id].setdefault(font_name, {})[style_name] = {
                "path": str(rel), "sha256": sha256_file(cfg.out_dir / rel),
                "peak": round(float(np.abs(audio).max()), 4),
            }
    result = {"piece": piece, "clips": [c.to_record(audio_index[c.id]) for c in clips], "error": None}
    _save_json(record_path, result)
    return result


def _save_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1))


def _load_done(cfg: RenderConfig, piece: str) -> dict[str, Any] | None:
    """A finished job's record, if it exists and every file it names is still there."""
    path = job_record_path(cfg.out_dir, piece)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    for clip in record["clips"]:
        for style in cfg.styles:
            for font in clip["audio"].values():
                if style not in font or not (cfg.out_dir / font[style]["path"]).exists():
                    return None
    return record


def check_inputs(cfg: RenderConfig) -> None:
    """Fail early, with one clear line, on what would otherwise fail inside a worker."""
    if shutil.which("fluidsynth") is None:
        raise StylehostError("fluidsynth not found: install it (Debian: apt-get install fluidsynth)")
    for font in (cfg.target_font, cfg.source_font):
        if font is None:
            continue
        if not Path(font).is_file():
            hint = "Debian: apt-get install fluid-soundfont-gm timgm6mb-soundfont"
            raise StylehostError(f"SoundFont not found: {font} ({hint})")
        with open(font, "rb") as f:
            head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise StylehostError(f"not a SoundFont 2 file (no RIFF/sfbk header): {font}")
    parse_styles(",".join(cfg.styles))


def summarise(clips: list[dict[str, Any]], cfg: RenderConfig) -> dict[str, Any]:
    """Hours per split and style for each font, and clip/piece counts."""
    summary: dict[str, Any] = {"hours": {}, "clips": {}, "pieces": {}}
    for split in SPLITS:
        chosen = [c for c in clips if c["split"] == split]
        hours = sum(c["samples"] for c in chosen) / cfg.sample_rate / 3600
        summary["clips"][split] = len(chosen)
        summary["pieces"][split] = len({c["piece"] for c in chosen})
        summary["hours"][split] = {style: round(hours, 4) for style in cfg.styles}
    return summary


def summary_markdown(summary: dict[str, Any], cfg: RenderConfig) -> str:
    lines = ["| split | pieces | clips | " + " | ".join(cfg.styles) + " |",
             "|---|---|---|" + "---|" * len(cfg.styles)]
    for split in SPLITS:
        hours = summary["hours"][split]
        lines.append(f"| {split} | {summary['pieces'][split]} | {summary['clips'][split]} | "
                     + " | ".join(f"{hours[s]:.2f} h" for s in cfg.styles) + " |")
    fonts = "FluidR3_GM (target)" + (" and TimGM6mb (source side)" if cfg.source_font else "")
    return ("# Paired dataset summary\n\nHours of audio per style and split, for each of: " + fonts
            + ".\n\n" + "\n".join(lines) + "\n")


def render_dataset(cfg: RenderConfig, progress: bool = True) -> dict[str, Any]:
    """Render until every split has its hours, resuming finished jobs; returns the manifest."""
    from tqdm import tqdm

    check_inputs(cfg)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    pieces = list_pieces(cfg.collections, cfg.seed)
    target = {"train": cfg.train_hours * 3600, "val": cfg.train_hours * cfg.eval_fraction * 3600,
              "test": cfg.train_hours * cfg.eval_fraction * 3600}
    have = dict.fromkeys(SPLITS, 0.0)
    records: list[dict[str, Any]] = []
    errors = 0
    wave = max(1, cfg.workers * 4)
    bar = tqdm(total=round(sum(target.values()) / 60, 1), unit="min", desc="render", disable=not progress)
    with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
        position = 0
        while position < len(pieces) and any(have[s] < target[s] for s in SPLITS):
            batch = [p for p in pieces[position : position + wave] if have[split_of(p)] < target[split_of(p)]]
            position += wave
            done = {p: _load_done(cfg, p) for p in batch}
            futures = {p: pool.submit(render_piece, p, cfg) for p, r in done.items() if r is None}
            for piece in batch:
                record = done[piece] or futures[piece].result()
                errors += record["error"] is not None
                records.append(record)
                split = split_of(piece)
                seconds = sum(c["samples"] for c in record["clips"]) / cfg.sample_rate
                bar.update(min(seconds, max(0.0, target[split] - have[split])) / 60)
                have[split] += seconds
            bar.set_postfix({s: f"{have[s] / 3600:.2f}h" for s in SPLITS})
    bar.close()
    if any(have[s] < target[s] for s in SPLITS):
        raise StylehostError(f"corpus exhausted before the requested size: {have}")
    clips = [c for r in records for c in r["clips"]]
    manifest: dict[str, Any] = {
        "format": FORMAT_VERSION, "sample_rate": cfg.sample_rate, "styles": list(cfg.styles),
        "fonts": ["fluidr3"] + (["timgm6mb"] if cfg.source_font else []),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "skipped_pieces": errors, "summary": summarise(clips, cfg), "clips": clips,
    }
    _save_json(cfg.out_dir / "manifest.json", manifest)
    (cfg.out_dir / "summary.md").write_text(summary_markdown(manifest["summary"], cfg))
    return manifest


def load_manifest(data_dir: Path) -> dict[str, Any]:
    """Read a rendered dataset's manifest, with a clear error when there is none."""
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise StylehostError(f"no dataset at {data_dir} (missing manifest.json): run `stylehost data render`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT_VERSION:
        raise StylehostError(f"dataset format {manifest.get('format')} != {FORMAT_VERSION}; re-render it")
    return manifest


def default_data_dir() -> Path:
    """Where datasets live unless --out says otherwise: ./data in a checkout, else the user data dir."""
    import platformdirs

    if Path("pyproject.toml").exists():
        return Path("data")
    return Path(platformdirs.user_data_dir("stylehost")) / "data"


def add_render_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None, help="output folder (default: data/paired, data/small)")
    p.add_argument("--small", action="store_true", help="a few short clips per split (for tests)")
    p.add_argument("--styles", default="all", help="comma-separated styles (default: all 8)")
    p.add_argument("--hours", type=float, default=None, help="training hours per style (default 1.2)")
    p.add_argument("--soundfont", type=Path, default=DEFAULT_SOUNDFONTS["fluidr3"], help="target SoundFont")
    p.add_argument("--source-soundfont", type=Path, default=DEFAULT_SOUNDFONTS["timgm6mb"],
                   help="second SoundFont for the source side ('none' to skip)")
    p.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1), help="parallel processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cli_render(args: argparse.Namespace) -> int:
    styles = tuple(s.name for s in parse_styles(args.styles))
    out = args.out or default_data_dir() / ("small" if args.small else "paired")
    source = None if str(args.source_soundfont).lower() == "none" else args.source_soundfont
    common = dict(styles=styles, target_font=args.soundfont, source_font=source, workers=max(1, args.workers),
                  seed=args.seed)
    if args.hours is not None:
        if args.hours <= 0:
            raise StylehostError("--hours must be positive")
        common["train_hours"] = args.hours
    cfg = RenderConfig.small(out, **common) if args.small else RenderConfig(out_dir=out, **common)
    manifest = render_dataset(cfg, progress=not args.quiet)
    print((cfg.out_dir / "summary.md").read_text())
    print(f"wrote {len(manifest['clips'])} clips x {len(styles)} styles x {len(manifest['fonts'])} fonts "
          f"to {cfg.out_dir}")
    return 0
