"""Denoisers on validation windows from SoundFont sources and from synthesized voices (issue 15).

    python -m benchmarks.synth_val --out benchmarks/results/synth_val.json \
        teacher=models/teacher/model.pt:euler:2 student=models/default/model.pt:consistency:1 ...

Each MODEL is NAME=PATH:SAMPLER:STEPS. Two fixed sets of 128 validation windows (val pieces, never
trained on, unaugmented): the dataset's own sources (``pairs.fixed_windows``, as training validates),
and the same draws with every source replaced by a random synthesized voice
(``diffusion/synth_augment.py``, p_synth = 1). The figure is the log-mel distance (dB) of the model's
strength-1 output to the true target, as ``distill.window_distance_db`` computes it for validation:
does training on synthesized sources help on them, and what does it cost on SoundFont sources? Each
model hears the sources as it was trained to (its file's ``source_input``: the source, or its harmonic
excitation, diffusion/pairs.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from diffusion.checkpoint import load_checkpoint, load_denoiser, meta_source_input
from diffusion.distill import window_distance_db
from diffusion.excitation import heard_channels
from diffusion.features import SpectrogramTransform
from diffusion.files import write_text_atomic
from diffusion.pairs import PairWindows, fixed_windows
from diffusion.provenance import git_commit
from diffusion.synth_augment import SynthAugmentConfig
from diffusion.train import load_pairs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", metavar="NAME=PATH:SAMPLER:STEPS")
    p.add_argument("--data", type=Path, default=Path("data/paired"))
    p.add_argument("--windows", type=int, default=128)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/synth_val.json"))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    specs = []
    for item in args.models:
        name, _, rest = item.partition("=")
        path, sampler, steps = rest.rsplit(":", 2)
        specs.append((name, Path(path), sampler, int(steps)))
    first = load_denoiser(specs[0][1])
    _, val = load_pairs(args.data, first.cfg)
    transform = SpectrogramTransform(first.cfg.spectrogram)

    def window_sets(heard: str) -> dict[str, dict[str, torch.Tensor]]:
        """The two sets, with the sources as a model trained on ``heard`` hears them (same draws, same targets)."""
        cfg = dataclasses.replace(first.cfg, source_channels=heard_channels(heard))  # the draws do not change
        synth = PairWindows(val, cfg, args.windows, (1234,), None, 0.125, SynthAugmentConfig(p_synth=1.0),
                            source_input=heard)
        return {"soundfont sources": fixed_windows(val, cfg, args.windows, source_input=heard),
                "synthesized voices": synth.batch(np.random.default_rng(1234), transform)}

    sets: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    rows = []
    for name, path, sampler, steps in specs:
        model = load_denoiser(path)
        heard = meta_source_input(load_checkpoint(path).get("meta"))
        if heard not in sets:
            sets[heard] = window_sets(heard)
        row = {"model": name, "path": str(path), "sampler": sampler, "steps": steps, "hears": heard}
        for label, windows in sets[heard].items():
            row[label] = window_distance_db(model, windows, steps, sampler)
        rows.append(row)
        print(f"{name} (hears: {heard}): " + ", ".join(f"{k} {row[k]:.2f} dB" for k in sets[heard]), flush=True)
    command = " ".join(["python", "-m", "benchmarks.synth_val", *(argv if argv is not None else sys.argv[1:])])
    report = {"command": command, "git_commit": git_commit(), "windows": args.windows, "rows": rows}
    write_text_atomic(args.out, json.dumps(report, indent=1) + "\n")
    lines = [f"`{command}`", "",
             "| model | hears | sampler, steps | SoundFont sources (dB) | synthesized voices (dB) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['hears']} | {r['sampler']}, {r['steps']} | {r['soundfont sources']:.2f} | "
              f"{r['synthesized voices']:.2f} |" for r in rows]
    write_text_atomic(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
