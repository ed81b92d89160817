"""Run by test_ddp.py under torchrun: a few DDP steps on CPU (gloo), then each rank saves its weights."""

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from diffusion.config import load_config
from diffusion.train import TrainConfig, train

if __name__ == "__main__":
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    cfg = load_config(TrainConfig, None, ["model.channels=[8,16]", "model.emb_dim=16", "model.fourier_dim=8",
                                          "batch_size=4", "workers=0", "threads=1", "steps=3", "val_windows=4"])
    ema = train(cfg, data, out / "run", progress=False)
    torch.save(ema.state_dict(), out / f"rank{os.environ['RANK']}.pt")
    dist.destroy_process_group()
