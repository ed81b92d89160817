"""benchmarks.strength_sweep scores every sampler row at every strength on real rendered windows."""

from pathlib import Path

import numpy as np
import torch

from benchmarks.strength_sweep import sweep
from diffusion.model import Denoiser, ModelConfig
from diffusion.pairs import fixed_windows
from diffusion.train import load_pairs


def test_sweep_scores_each_sampler_at_each_strength(small_dataset: Path) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(channels=(8, 16), emb_dim=16, fourier_dim=8, styles=("piano", "guitar", "flute"))
    teacher, student = Denoiser(cfg).eval(), Denoiser(cfg).eval()
    train, val = load_pairs(small_dataset, cfg)
    windows = fixed_windows(val or train, cfg, 8)
    table = sweep(teacher, student, windows, [0.5, 1.0])
    assert set(table) == {"teacher DDIM 1", "teacher Heun 8", "student 1", "student 2"}
    for row in table.values():
        assert set(row) == {"0.5", "1"} and all(np.isfinite(v) and v > 0 for v in row.values())
    # The same model and start give different answers with a different sampler: the rows are not copies.
    assert table["teacher DDIM 1"]["1"] != table["teacher Heun 8"]["1"]
