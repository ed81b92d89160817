"""Spectrogram pictures for issue 15: source, today's bundle, a new bundle and the true target, side by side.

    python -m benchmarks.timbre_pictures --new runs/bundle-new --out docs/timbre_pictures.png

One test clip (the first that benchmarks/timbre.py picks), three restylings of sources no SoundFont has:
a whistle-like sine to violin, a Karplus-Strong pluck to cello, a sung /a/ to flute
(``diffusion/synth_sources.py``). Each row: the source, what ``--today`` makes of it, what ``--new``
makes of it (each bundle streamed as the engine plays it: with its excitation and its input gate when its
manifest has them), and the FluidR3 rendering of the same notes. Log-magnitude STFT, 0-6 kHz, 80 dB range; each panel's
title has its harmonic distance to the target (diffusion/harmonics.py), lower is closer.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from benchmarks.timbre import TimbreConfig, _read, clip_notes, load_model, pick_clips
from diffusion.data import load_manifest
from diffusion.harmonics import harmonic_distance
from diffusion.resynth import PhaseGuidedResynth
from diffusion.stream import stream_audio
from diffusion.synth_sources import SOURCES

PAIRS = (("sine_vibrato", "violin"), ("pluck", "cello"), ("voice", "flute"))


def spectrogram_db(audio: np.ndarray, sr: int, n_fft: int = 1024, hop: int = 128) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(audio, (n_fft // 2, n_fft // 2)), n_fft)[::hop]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)).T
    return 20 * np.log10(mag + 1e-7)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("data/paired"))
    p.add_argument("--today", type=Path, default=Path("models/default"),
                   help="the bundle to compare against (the one the new bundle replaces)")
    p.add_argument("--new", type=Path, required=True, help="the new bundle")
    p.add_argument("--out", type=Path, default=Path("docs/timbre_pictures.png"))
    p.add_argument("--seconds", type=float, default=3.0, help="length shown from the clip's first note")
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    torch.set_num_threads(2)
    manifest = load_manifest(args.data)
    sr = int(manifest["sample_rate"])
    records = [c for c in manifest["clips"] if c["split"] == "test"]
    shuffled = [records[int(i)] for i in np.random.default_rng(0).permutation(len(records))]
    candidates = shuffled[:12]
    notes = clip_notes(manifest, args.data, candidates)
    cid = pick_clips(candidates, notes, sr, TimbreConfig(clips=1))[0]
    record = next(c for c in candidates if c["id"] == cid)
    models = [load_model(args.today, "today"), load_model(args.new, "new")]
    resynth = PhaseGuidedResynth(models[0].denoiser.cfg.spectrogram)
    first = int(min(n.start for n in notes[cid]) * sr)
    span = slice(max(0, first - sr // 20), max(0, first - sr // 20) + int(args.seconds * sr))
    fig, axes = plt.subplots(len(PAIRS), 4, figsize=(16, 3.2 * len(PAIRS)), sharex=True, sharey=True)
    for row, (source_name, target_name) in enumerate(PAIRS):
        source = SOURCES[source_name](notes[cid], record["samples"], sr, 0)
        target = _read(args.data, record["audio"]["fluidr3"][target_name])
        panels = [(f"source: {source_name}", source)]
        for m in models:
            with torch.no_grad():
                out = stream_audio(m.denoiser, resynth, source, m.denoiser.style_vector({target_name: 1.0}), m.stream,
                                   m.stage, m.excitation, m.denoiser_input, m.gate)  # as the engine plays it
            panels.append((f"{m.label} -> {target_name}", out))
        panels.append((f"true {target_name} (FluidR3)", target))
        for col, (title, audio) in enumerate(panels):
            dist = harmonic_distance(audio, target, notes[cid], sr)
            spec = spectrogram_db(audio[span], sr)
            top = int(6000 / (sr / 1024))
            ax = axes[row, col]
            ax.imshow(spec[:top], origin="lower", aspect="auto", cmap="magma", vmin=spec.max() - 80, vmax=spec.max(),
                      extent=(0, len(audio[span]) / sr, 0, top * sr / 1024))
            ax.set_title(f"{title}\nharmonic dist {dist:.1f} dB" if col < 3 else title, fontsize=9)
            if col == 0:
                ax.set_ylabel("Hz")
            if row == len(PAIRS) - 1:
                ax.set_xlabel("s")
    fig.suptitle(f"test clip {cid}: sources no SoundFont has, restyled", fontsize=11)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
