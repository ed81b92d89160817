"""benchmarks.processor_ms on the shipped low-latency bundle: the call and its split into ONNX graphs."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.processor_ms import main, processor_ms


def test_the_call_is_split_into_its_graphs_and_the_rest() -> None:
    r = processor_ms("models/low-latency", seconds=1.0)
    parts = r["graph_p50_ms"]
    assert set(parts) == {"frontend", "denoiser", "resynth", "rest"}
    assert all(parts[g] > 0 for g in ("frontend", "denoiser", "resynth"))
    # the graphs run inside the call: their medians add up to less than the call's (the rest is the excitation,
    # the window handling and Python), give or take the medians' own spread
    assert parts["frontend"] + parts["denoiser"] + parts["resynth"] < 1.2 * r["bundle"]["p50_ms"]
    assert r["precision"] == "int8"  # the bundle ships an int8 denoiser and the CPU backend picks it


def test_the_report_names_its_command_and_parts(tmp_path: Path) -> None:
    out = tmp_path / "pm"
    assert main(["models/low-latency", "--seconds", "0.5", "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["meta"]["command"].startswith("python -m benchmarks.processor_ms models/low-latency")
    assert "p50 ms by part: frontend" in out.with_suffix(".md").read_text()


def test_side_thread_both_times_one_processor_each_way(tmp_path: Path) -> None:
    import pytest

    from diffusion.errors import StylehostError

    r = processor_ms("models/streaming", seconds=0.5, side_thread="both")
    assert r["modes"] == ["in line", "side thread"]
    for mode in r["modes"]:  # both made the excitation (timed where it ran), both called every stride
        assert r[mode]["p50_ms"] > 0 and r[mode]["exc_p50_ms"] > 0
    with pytest.raises(StylehostError, match="one thing at a time"):
        processor_ms("models/streaming", seconds=0.5, excitation="both", side_thread="both")


def test_a_gap_after_every_call_is_slept_or_polled() -> None:
    """--gap-ms: the live worker's wait between strides, asleep or polling (EngineConfig.spin_ms)."""
    for how in ("sleep", "spin"):
        r = processor_ms("models/streaming", seconds=0.5, gap_ms=1.0, gap=how)
        assert r["gap_ms"] == 1.0 and r["gap"] == how and r["bundle"]["p50_ms"] > 0
