"""How much a windowed model's 1-step output depends on its noise: the figures behind causal-distill's choice
of target (diffusion/causal_distill.py).

    python -m benchmarks.noise_spread models/default/model.pt [--data data/paired] [--windows 32]

On fixed val windows at strength 1, one step, the emitted columns: mean |log-mel| (dB) between two noise seeds,
each seed's distance to the true target, and the distance of the two seeds' mean to it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from diffusion.checkpoint import load_denoiser, model_sampler
from diffusion.pairs import fixed_windows
from diffusion.sampling import transfer
from diffusion.train import DB_PER_NEPER, load_pairs


def noise_spread(model: Path, data: Path, windows: int = 32) -> dict[str, float]:
    d = load_denoiser(model)
    _, val = load_pairs(data, d.cfg)
    w = fixed_windows(val, d.cfg, windows)
    onehot = torch.nn.functional.one_hot(w["style"], len(d.cfg.styles)).float()
    sampler = model_sampler(model)
    with torch.no_grad():
        a, b = (transfer(d, w["source"], d.style_vectors(onehot), strength=1.0, steps=1, sampler=sampler, seed=s)
                for s in (0, 1))
    t, look, e = d.cfg.window, d.cfg.lookahead, d.cfg.emit
    cols = slice(t - look - e, t - look)

    def db(x: torch.Tensor) -> float:
        return float(x[..., cols].abs().mean()) * DB_PER_NEPER

    return {"seed0_vs_seed1_db": db(a - b), "seed0_vs_target_db": db(a - w["target"]),
            "seed1_vs_target_db": db(b - w["target"]), "mean_vs_target_db": db((a + b) / 2 - w["target"])}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.noise_spread", description=__doc__.split("\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("--data", type=Path, default=Path("data/paired"))
    p.add_argument("--windows", type=int, default=32)
    args = p.parse_args(argv)
    r = noise_spread(args.model, args.data, args.windows)
    print(", ".join(f"{k} {v:.2f}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
