"""DDP smoke test: 2 CPU processes under torchrun train a few steps and end with identical weights."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.diffusion.synthdata import make_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_cpu_ranks_hold_identical_weights(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", clips=4, seconds=0.4)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tests" / "diffusion" / "ddp_worker.py"), str(data), str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    # The weights moved: training happened (the zero-initialised output layer is no longer zero).
    assert a["net.out.weight"].abs().sum() > 0
