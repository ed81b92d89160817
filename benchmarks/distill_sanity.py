"""Does consistency distillation work at all? A small check on synthetic data, minutes on a CPU.

Trains a tiny teacher (channels 16, 32) on the synthetic instruments of ``tests/diffusion/synthdata.py``,
distils it with ``stylehost distill``'s code, and prints, per transfer strength, the mean |log-mel|
distance (dB) of each sampler's output to the teacher's ODE endpoint (Heun, 16 steps, same start
noise): how faithfully a few steps reproduce the teacher. Only the 1-step rows are like for like;
multistep consistency sampling re-noises with fresh noise, so it lands on another sample, not on
this endpoint. Not the issue's quality table (that is ``stylehost distill-report`` on real data).

    python -m benchmarks.distill_sanity --out /tmp/sanity [--set lr=2e-4 --set weighting=uniform]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from diffusion.checkpoint import load_denoiser
from diffusion.config import load_config
from diffusion.distill import DistillConfig, distill
from diffusion.model import Denoiser
from diffusion.pairs import fixed_windows, load_clips
from diffusion.sampling import transfer
from diffusion.train import DB_PER_NEPER, TrainConfig, train

SMALL = ["batch_size=16", "workers=0", "threads=1", "val_windows=64", "val_every=100000", "checkpoint_every=100000"]


def fidelity(teacher: Denoiser, student: Denoiser, val: dict[str, torch.Tensor],
             strengths: tuple[float, ...] = (1.0, 0.6, 0.3)) -> dict[str, dict[str, float]]:
    """{strength: {row: dB from the teacher's Heun-16 output}}."""
    onehot = torch.nn.functional.one_hot(val["style"], len(teacher.cfg.styles)).float()

    def run(model: Denoiser, sampler: str, steps: int, strength: float) -> torch.Tensor:
        with torch.no_grad():
            return transfer(model, val["source"], model.style_vectors(onehot), strength=strength, steps=steps,
                            sampler=sampler, seed=0)

    out = {}
    for strength in strengths:
        ref = run(teacher, "heun", 16, strength)
        rows = {f"teacher DDIM {k}": run(teacher, "euler", k, strength) for k in (1, 2, 4)}
        rows["teacher Heun 8"] = run(teacher, "heun", 8, strength)
        rows.update({f"student {k}": run(student, "consistency", k, strength) for k in (1, 2, 4)})
        out[str(strength)] = {name: round(float((x - ref).abs().mean()) * DB_PER_NEPER, 2) for name, x in rows.items()}
    return out


def main() -> None:
    from tests.diffusion.synthdata import make_dataset

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--teacher-steps", type=int, default=1500)
    p.add_argument("--distill-steps", type=int, default=800)
    p.add_argument("--set", dest="overrides", action="append", default=[], help="DistillConfig key=value")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = args.out / "data"
    if not (data / "manifest.json").exists():
        make_dataset(data, clips=12, seconds=1.0)
    model = ["model.channels=[16,32]", "model.emb_dim=32", "model.fourier_dim=16"]
    train(load_config(TrainConfig, None, [*model, *SMALL, "val_steps=2", f"steps={args.teacher_steps}", "lr=2e-3",
                                          "warmup=50"]), data, args.out / "teacher", progress=False)
    cfg = load_config(DistillConfig, None, [*SMALL, f"steps={args.distill_steps}", "warmup=20", *args.overrides])
    distill(cfg, args.out / "teacher" / "model.pt", data, args.out / "student", progress=False)
    teacher = load_denoiser(args.out / "teacher" / "model.pt")
    student = load_denoiser(args.out / "student" / "model.pt")
    val = fixed_windows(load_clips(data, teacher.cfg, "val") + load_clips(data, teacher.cfg, "test"), teacher.cfg, 128)
    print(json.dumps({"distill_config": args.overrides, "fidelity_db": fidelity(teacher, student, val)}, indent=1))


if __name__ == "__main__":
    main()
