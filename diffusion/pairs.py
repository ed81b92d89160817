"""Paired training windows from a rendered dataset (the manifest written by ``stylehost data render``).

Every clip is rendered in every style with two SoundFonts, sample-aligned. One training example is a
random clip, a random source (style x font), a random fluidr3 target style, and the same T-frame crop
of both. Whole clips live in RAM as int16 (a few hundred MB for the full set), and batches are cut in
a DataLoader worker so the training thread only runs the network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import IterableDataset, get_worker_info

from diffusion.augment import PREROLL_SECONDS, AugmentConfig, augment_source
from diffusion.errors import StylehostError
from diffusion.excitation import DENOISER_INPUTS, ExcitationConfig, excite_window, heard_channels
from diffusion.features import SpectrogramTransform
from diffusion.model import ModelConfig
from diffusion.synth_augment import Note4, SynthAugmentConfig, draw_voice, render_voice

TARGET_FONT = "fluidr3"  # the target sound; other fonts appear only on the source side


@dataclass
class Clip:
    id: str
    split: str
    samples: int
    audio: dict[str, dict[str, np.ndarray]]  # font -> style -> int16 (samples,)
    notes: list[Note4] = field(default_factory=list)  # (pitch, start s, end s, velocity); [] in old datasets


def read_manifest(data_dir: Path) -> dict[str, Any]:
    """The dataset manifest, with a clear error when the dataset is missing or of another kind."""
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise StylehostError(f"no dataset at {data_dir} (missing {path}); render one with `stylehost data render`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StylehostError(f"cannot read dataset manifest {path}: {exc}") from exc
    if manifest.get("format") != 1:
        raise StylehostError(f"{path}: unsupported dataset format {manifest.get('format')!r} (expected 1)")
    return manifest


def load_clips(data_dir: Path, cfg: ModelConfig, split: str) -> list[Clip]:
    """Load every clip of ``split`` in the model's styles (all fonts) into RAM as int16."""
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    sr = cfg.spectrogram.sample_rate
    if manifest.get("sample_rate") != sr:
        raise StylehostError(f"dataset sample rate {manifest.get('sample_rate')} != model's {sr}")
    missing = [s for s in cfg.styles if s not in manifest.get("styles", [])]
    if missing:
        raise StylehostError(f"dataset {data_dir} lacks styles {missing}; it has {manifest.get('styles')}")
    fonts = list(manifest.get("fonts", []))
    if TARGET_FONT not in fonts:
        raise StylehostError(f"dataset {data_dir} lacks the target font {TARGET_FONT!r}; it has {fonts}")
    clips = []
    for entry in manifest["clips"]:
        if entry["split"] != split or cfg.spectrogram.num_frames(entry["samples"]) < cfg.window:
            continue
        audio: dict[str, dict[str, np.ndarray]] = {}
        for font in fonts:
            audio[font] = {}
            for style in cfg.styles:
                path = data_dir / entry["audio"][font][style]["path"]
                try:
                    wave, file_sr = sf.read(path, dtype="int16", always_2d=False)
                except (OSError, RuntimeError, sf.LibsndfileError) as exc:
                    raise StylehostError(f"cannot read {path}: {exc}") from exc
                if file_sr != sr or wave.ndim != 1 or len(wave) != entry["samples"]:
                    raise StylehostError(f"{path}: expected mono {sr} Hz with {entry['samples']} samples")
                audio[font][style] = wave
        notes = [(int(p), float(a), float(b), int(v)) for p, a, b, v in entry.get("notes", [])]
        clips.append(Clip(entry["id"], split, entry["samples"], audio, notes))
    return clips


class PairWindows(IterableDataset):
    """Endless batches: {'source', 'target': (B, n_mels, T) float32 log-mel, 'style': (B,) target index}.

    Seeded by ``seed`` (the trainer passes (seed, rank, start step)) plus the worker id, so a run is
    reproducible and DDP ranks see different windows.
    ``p_same_style`` is the share of examples whose target style equals the source style (the source
    may still be the other font or augmented, so it is not a no-op). With ``synth`` a share
    ``synth.p_synth`` of sources is a random synthesized voice playing the clip's notes instead
    (diffusion/synth_augment.py), roughened by ``augment`` like any source; in ``synth.mode`` "add" they
    join the batch's ``batch_size`` SoundFont examples instead of replacing some. ``source_input``
    "excitation": the source is replaced by its harmonic excitation (diffusion/excitation.py, computed over
    the pre-roll too, its last hop silent as live), for a denoiser that hears only pitch and loudness.
    """

    def __init__(
        self,
        clips: list[Clip],
        cfg: ModelConfig,
        batch_size: int,
        seed: tuple[int, ...],
        augment: AugmentConfig | None,
        p_same_style: float = 0.125,
        synth: SynthAugmentConfig | None = None,
        source_input: str = "source",
    ) -> None:
        if not clips:
            raise StylehostError("no training clips long enough for one window in the dataset")
        self.clips, self.cfg, self.batch_size, self.seed = clips, cfg, batch_size, seed
        self.augment, self.p_same_style = augment, p_same_style
        self.synth = synth if synth is not None and synth.p_synth > 0 else None
        if self.synth is not None and not all(c.notes for c in clips):
            raise StylehostError("synthesized-source augmentation needs each clip's notes, which this dataset's "
                                 "manifest lacks: re-render it with `stylehost data render`")
        self.fonts = sorted(clips[0].audio)
        if source_input not in DENOISER_INPUTS:
            raise StylehostError(f"source_input must be one of {', '.join(DENOISER_INPUTS)}, got {source_input!r}")
        if heard_channels(source_input) != cfg.source_channels:
            raise StylehostError(f"a model with source_channels {cfg.source_channels} cannot hear {source_input!r}: "
                                 f"source_input 'both' goes with --set model.source_channels=2, the others with 1")
        self.source_input = source_input

    def example(
        self, rng: np.random.Generator, keep_preroll: int = 0, synth: bool | None = None,
        target_style: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """One (source wave, target wave, target style index); the target num_samples(T) long, the source
        ``keep_preroll`` samples (at most PREROLL_SECONDS) longer, the clip's audio before the crop first.
        ``synth`` forces a synthesized (True) or SoundFont (False) source; None draws with ``p_synth``.
        ``target_style`` overrides the drawn target style (after the draw, so the random stream is the same)."""
        spec, n_styles = self.cfg.spectrogram, len(self.cfg.styles)
        clip = self.clips[rng.integers(len(self.clips))]
        src_style = int(rng.integers(n_styles))
        if rng.random() < self.p_same_style or n_styles == 1:
            tgt_style = src_style
        else:
            tgt_style = int((src_style + rng.integers(1, n_styles)) % n_styles)
        if target_style is not None:
            tgt_style = int(target_style)
        font = self.fonts[rng.integers(len(self.fonts))]
        start = int(rng.integers(spec.num_frames(clip.samples) - self.cfg.window + 1)) * spec.hop
        length = spec.num_samples(self.cfg.window)
        target = clip.audio[TARGET_FONT][self.cfg.styles[tgt_style]][start : start + length]
        pre = int(PREROLL_SECONDS * spec.sample_rate)
        if not 0 <= keep_preroll <= pre:
            raise StylehostError(f"keep_preroll must be in 0..{pre}, got {keep_preroll}")
        # The draw happens only when the augmentation is on: runs without it keep their random stream.
        if synth is None:
            synth = self.synth is not None and self.synth.mode == "replace" and rng.random() < self.synth.p_synth
        if synth:
            if self.synth is None:
                raise StylehostError("a synthesized source was asked for, but synthesized sources are off")
            voice = draw_voice(rng, self.synth)
            seg = render_voice(clip.notes, start - pre, pre + length, spec.sample_rate, voice,
                               int(rng.integers(1 << 31)))
        else:
            src = clip.audio[font][self.cfg.styles[src_style]]
            seg = src[max(0, start - pre) : start + length].astype(np.float32) / 32768.0
            seg = np.concatenate([np.zeros(pre - min(pre, start), np.float32), seg])
        if self.augment is not None:
            seg = augment_source(seg, rng, spec.sample_rate, self.augment)
        if self.source_input != "source":  # what the denoiser hears live (realtime/model_processor.py)
            excited = excite_window(seg, spec.sample_rate, spec.hop, ExcitationConfig())
            seg = excited if self.source_input == "excitation" else np.stack([seg, excited])
        source = seg[..., pre - keep_preroll :]
        return source, target.astype(np.float32) / 32768.0, tgt_style

    def draw_examples(
        self, rng: np.random.Generator, keep_preroll: int = 0
    ) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """A batch's examples: ``batch_size`` drawn with ``p_synth``, or in mode "add" that many SoundFont
        ones then round(p_synth * batch_size) synthesized ones."""
        examples = [self.example(rng, keep_preroll) for _ in range(self.batch_size)]
        if self.synth is not None and self.synth.mode == "add":
            extra = round(self.synth.p_synth * self.batch_size)
            examples += [self.example(rng, keep_preroll, synth=True) for _ in range(extra)]
        return examples

    def batch(self, rng: np.random.Generator, transform: SpectrogramTransform) -> dict[str, torch.Tensor]:
        examples = self.draw_examples(rng)
        with torch.no_grad():
            waves = torch.from_numpy(np.stack([e[0] for e in examples]))  # (B, samples) or (B, 2, samples)
            source = transform.log_mel(waves.reshape(-1, waves.shape[-1]))
            source = source.reshape(*waves.shape[:-1], *source.shape[1:])
            target = transform.log_mel(torch.from_numpy(np.stack([e[1] for e in examples])))
        return {"source": source, "target": target, "style": torch.tensor([e[2] for e in examples])}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        if info is not None:
            torch.set_num_threads(1)  # the worker must leave the cores to the training thread
        rng = np.random.default_rng([*self.seed, worker])
        transform = SpectrogramTransform(self.cfg.spectrogram)
        while True:
            yield self.batch(rng, transform)


def fixed_windows(
    clips: list[Clip], cfg: ModelConfig, count: int, seed: int = 1234, source_input: str = "source"
) -> dict[str, torch.Tensor]:
    """A deterministic, unaugmented set of windows (validation): same draws on every run and rank."""
    if not clips:
        return {}
    ds = PairWindows(clips, cfg, batch_size=count, seed=(seed,), augment=None, source_input=source_input)
    return ds.batch(np.random.default_rng(seed), SpectrogramTransform(cfg.spectrogram))


def estimate_ram_mb(clips: list[Clip]) -> float:
    return sum(w.nbytes for c in clips for f in c.audio.values() for w in f.values()) / 2**20
