"""`python -m benchmarks.latency_budget`: the computed budget, written as JSON and markdown, is the engine's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.latency_budget import main
from realtime.engine import Engine, EngineConfig
from realtime.processor import StftPassthroughProcessor


def test_the_budget_file_holds_the_engines_latency(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    measured = tmp_path / "bench.json"
    measured.write_text(json.dumps({"runs": [{"blocksize": 128, "end_to_end_latency_ms": 38.9,
                                              "reported_latency_ms": 38.95, "pulse_delays_ms": [38.9]}]}))
    assert main(["passthrough", "--blocks", "64,128", "--measured", str(measured), "--out", str(tmp_path / "b")]) == 0
    result = json.loads((tmp_path / "b.json").read_text())
    engine = Engine(StftPassthroughProcessor, EngineConfig(sample_rate=48000, blocksize=128)).latency
    total = result["blocks"]["128"][-1]
    assert total["term"] == "total" and total["samples"] == pytest.approx(engine.algorithmic + 2 * 128, abs=0.1)
    assert result["measured"]["end_to_end_latency_ms"] == 38.9 and "pulse_delays_ms" not in result["measured"]
    text = (tmp_path / "b.md").read_text()
    assert "| look-ahead (1 frame) |" in text and "end to end (pulses) 38.90 ms" in text
    assert text == capsys.readouterr().out
