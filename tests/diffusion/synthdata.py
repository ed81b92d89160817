"""A tiny synthetic dataset in the renderer's manifest schema, for tests that must not wait for FluidSynth.

Each "instrument" is additive synthesis with its own harmonic spectrum and envelope, so styles are
as different as a model could wish and a few training steps already show the loss falling. The
second font (timgm6mb) is the same instrument with a slightly different spectrum, as a second
SoundFont would be. Every file of a clip plays the same notes at the same times.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from diffusion.styles import STYLE_NAMES

SR = 24000
FONTS = ("fluidr3", "timgm6mb")


def _instrument(style_index: int, font_index: int) -> tuple[np.ndarray, float, float]:
    """(harmonic amplitudes, attack s, decay rate 1/s) of one synthetic style."""
    k = np.arange(1, 13)
    tilt = 0.4 + 0.35 * style_index  # dark to bright
    amps = k ** -(3.2 - tilt)
    if style_index % 2:
        amps[1::2] *= 0.15  # odd harmonics only: clarinet-like
    amps *= 1.0 + 0.25 * font_index * np.cos(k + style_index)  # the second font colours it a little
    attack = 0.002 + 0.01 * (style_index % 3)
    decay = 0.5 + 1.5 * (style_index % 4)
    return amps / amps.sum(), attack, decay


def _render(notes: list[tuple[float, float, int]], samples: int, style_index: int, font_index: int) -> np.ndarray:
    amps, attack, decay = _instrument(style_index, font_index)
    out = np.zeros(samples)
    for onset, dur, pitch in notes:
        start, n = int(onset * SR), int(dur * SR)
        n = min(n, samples - start)
        t = np.arange(n) / SR
        env = np.minimum(1.0, t / attack) * np.exp(-decay * t) * np.minimum(1.0, (dur - t) / 0.01)
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        tone = sum(a * np.sin(2 * np.pi * f0 * (h + 1) * t) for h, a in enumerate(amps) if f0 * (h + 1) < SR / 2)
        out[start : start + n] += 0.3 * env * tone
    return out


def make_dataset(
    root: Path, clips: int = 6, seconds: float = 1.0, styles: tuple[str, ...] = STYLE_NAMES, seed: int = 0
) -> Path:
    """Write FLACs and manifest.json under ``root``; splits cycle train, train, ..., val, test."""
    rng = np.random.default_rng(seed)
    samples = int(seconds * SR)
    entries = []
    for c in range(clips):
        split = "val" if c == clips - 2 else "test" if c == clips - 1 else "train"
        notes, t = [], 0.0
        while t < seconds - 0.1:
            dur = float(rng.uniform(0.08, 0.3))
            notes.append((t, min(dur, seconds - t), int(rng.integers(55, 80))))
            t += dur
        clip_id = f"synth{c:03d}"
        audio: dict[str, dict[str, dict[str, str]]] = {}
        for fi, font in enumerate(FONTS):
            audio[font] = {}
            for si, style in enumerate(styles):
                rel = f"audio/{font}/{style}/{clip_id}.flac"
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, _render(notes, samples, si, fi), SR, subtype="PCM_16")
                audio[font][style] = {"path": rel, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        entries.append({"id": clip_id, "piece": f"synth/{c}", "split": split, "samples": samples,
                        "onsets": [n[0] for n in notes], "transpose": 0, "tempo_scale": 1.0, "audio": audio,
                        "notes": [[p, on, on + dur, 100] for on, dur, p in notes]})
    manifest = {"format": 1, "sample_rate": SR, "styles": list(styles), "fonts": list(FONTS), "clips": entries}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root
