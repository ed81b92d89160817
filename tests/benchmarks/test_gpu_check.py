"""The GPU check's dry run: the very script the one GPU run uses, on the CPU backends, end to end (facts,
parity, timings, the recommendation, a real bench latency through a private JACK server), so that run
cannot fail on a typo; and the recommendation rule on figures with a known answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_check import HEADROOM, STEPS, recommend
from export import bundle as B
from stylehost.cli import main
from tests.export.tiny import tiny_bundle

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> B.Bundle:
    torch.set_num_threads(1)
    return tiny_bundle(tmp_path_factory.mktemp("bundles"))


def test_recommend_takes_the_smallest_emit_then_the_most_steps_that_fit() -> None:
    sweep = [{"emit": e, "steps": s, "stride_ms": 4.0 * e, "p99_ms": 0.6 * s * e} for e in (1, 2) for s in STEPS]
    rec = recommend(sweep)  # emit 1: 4 ms stride, HEADROOM 2 ms -> 3 steps (1.8 ms); 4 steps (2.4 ms) does not fit
    assert rec is not None and (rec["emit"], rec["steps"]) == (1, 3) and rec["p99_ms"] <= HEADROOM * rec["stride_ms"]
    assert recommend([{**s, "p99_ms": 100.0} for s in sweep]) is None


def test_dry_run_is_the_whole_check_on_the_cpu(bundle: B.Bundle, tmp_path: Path) -> None:
    out = tmp_path / "dry.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--dry-run", "--model", str(bundle.path),
                           "--calls", "5", "--latency-seconds", "3", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["dry_run"] and result["gpu"] == "none (CPU dry run)" and result["bundle_digest"] == bundle.digest
    env = result["environment"]
    assert env["torch"] == torch.__version__ and "CPUExecutionProvider" in env["onnxruntime_providers"]
    cpu, dry = result["backends"]["cpu"], result["backends"]["torch-cuda (CPU dry run)"]
    assert "error" not in cpu and "error" not in dry, (cpu.get("error"), dry.get("error"))
    assert set(dry["parity_vs_ort_cpu"]) == {"denoiser", "frontend", "resynth"}
    for entry in (cpu, dry):
        sweep = entry["processor_sweep"]
        emits = {1, int(bundle.defaults["emit"]), bundle.emit}
        assert {(s["emit"], s["steps"]) for s in sweep} == {(e, s) for e in emits for s in STEPS}
        assert all(0 < s["p50_ms"] <= s["p99_ms"] <= s["max_ms"] and s["calls"] == 5 for s in sweep)
        assert entry["recommended"] == recommend(sweep)
    latency = result["latency"]  # the end-to-end command the GPU run would make, with its CPU reference
    assert "error" not in latency and "skipped" not in latency, latency
    assert latency["backend"] == "cpu" and latency["end_to_end_latency_ms"] > 0
    assert str(bundle.path) in latency["command"]
    results = tmp_path / "results"  # and the report tables it as it will table the GPU's file
    results.mkdir()
    (results / "gpu_check.json").write_text(out.read_text())
    assert main(["bench", "report", "--results", str(results), "--out", str(tmp_path / "RESULTS.md")]) == 0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "GPU: **none (CPU dry run)**" in text and "| torch-cuda (CPU dry run) |" in text
    assert f"{latency['end_to_end_latency_ms']} ms, {latency['dropouts']} dropouts" in text
