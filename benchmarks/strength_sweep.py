"""Where should a sampler start? Log-mel distance to the true target per transfer strength, on the
fixed validation windows that `stylehost distill` validates on (128 windows, unaugmented, seeded).

Why it exists: strength < 1 starts sampling from the *noised source* (SDEdit). For this source-
conditioned model that start carries the source's timbre along the probability-flow ODE, so the
teacher's accurate ODE solution (Heun) lands further from the target at strength 0.7 than at 1.0, and
a consistency student, which learns exactly that ODE's end point, inherits it. One denoiser call from
the same start (DDIM 1) returns the posterior mean instead, which is closer on this distance and
blurrier (the Frechet column of `stylehost eval` shows that side). Window-level and fast (under a
minute on 2 cores); not the streamed test-split table.

    python -m benchmarks.strength_sweep --teacher models/teacher/model.pt --student models/default/model.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from diffusion.checkpoint import load_denoiser
from diffusion.config import parse_list
from diffusion.distill import window_distance_db
from diffusion.model import Denoiser
from diffusion.pairs import fixed_windows
from diffusion.train import load_pairs


def sweep(teacher: Denoiser, student: Denoiser, windows: dict[str, torch.Tensor],
          strengths: list[float]) -> dict[str, dict[str, float]]:
    rows = {"teacher DDIM 1": (teacher, 1, "euler"), "teacher Heun 8": (teacher, 8, "heun"),
            "student 1": (student, 1, "consistency"), "student 2": (student, 2, "consistency")}
    return {name: {f"{s:g}": window_distance_db(m, windows, steps, sampler, s) for s in strengths}
            for name, (m, steps, sampler) in rows.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", type=Path, required=True)
    p.add_argument("--student", type=Path, required=True)
    p.add_argument("--data", type=Path, default=Path("data/paired"))
    p.add_argument("--strengths", default="0.5,0.7,1.0")
    p.add_argument("--windows", type=int, default=128)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    teacher, student = load_denoiser(args.teacher).eval(), load_denoiser(args.student).eval()
    _, val = load_pairs(args.data, teacher.cfg)
    windows = fixed_windows(val, teacher.cfg, args.windows)
    table = sweep(teacher, student, windows, parse_list(args.strengths, float, "strengths"))
    print("| sampler | " + " | ".join(f"s={s}" for s in next(iter(table.values()))) + " |")
    print("|---|" + "---|" * len(next(iter(table.values()))))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row.values()) + " |")
    if args.json:
        args.json.write_text(json.dumps({"log_mel_db": table, "windows": args.windows,
                                         "teacher": str(args.teacher), "student": str(args.student)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
