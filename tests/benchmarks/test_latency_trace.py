"""`stylehost bench latency --trace FILE` through a JACK dummy server: every processor call recorded, the late
calls classified, and a valid JSON file written beside the usual figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.jackserver import JackServer
from realtime.calltrace import CLASSES, FIELDS
from stylehost.cli import main

pytestmark = pytest.mark.jack


def test_trace_file_holds_every_call_and_the_classification(jack_server: JackServer, tmp_path: Path) -> None:
    out, lat = tmp_path / "trace.json", tmp_path / "lat.json"
    assert main(["bench", "latency", "--seconds", "1", "--server", jack_server.name, "--model", "passthrough",
                 "--blocksize", "128", "--json", str(lat), "--trace", str(out)]) == 0
    trace = json.loads(out.read_text())
    result = json.loads(lat.read_text())
    assert "call_trace" not in result  # the records go to the trace file only
    assert trace["blocksize"] == 128 and trace["backend"] == "dsp-passthrough" and "machine" in trace
    records = trace["records"]
    assert set(records) == set(FIELDS)
    n = trace["calls_kept"]
    assert n == trace["calls_made"] and all(len(v) == n for v in records.values())
    lo, hi = trace["measured_calls"]
    assert 0 <= lo < hi <= n and hi - lo >= result["compute_calls"] - 1  # the collector saw the same calls
    assert all(c <= w for c, w in zip(records["cpu"], records["wall"], strict=True))
    for key in ("over_stride", "over_margin"):
        summary = trace[key]
        assert set(summary["classes"]) == set(CLASSES) and sum(summary["classes"].values()) == summary["late"]
        for k in ("wall", "cpu", "wait"):
            assert summary["all"][k]["p50_ms"] <= summary["all"][k]["p99_ms"] <= summary["all"][k]["max_ms"]
    assert trace["over_stride"]["budget_ms"] == pytest.approx(trace["stride_ms"])
    assert len(trace["over_stride"]["worst"]) == min(20, n)
    assert trace["over_margin"]["late"] >= trace["over_stride"]["late"]  # the margin (6 ms) < the stride (8 ms)


def test_trace_does_not_combine_with_the_search(jack_server: JackServer, tmp_path: Path) -> None:
    assert main(["bench", "latency", "--find-blocksize", "--server", jack_server.name, "--model", "passthrough",
                 "--trace", str(tmp_path / "t.json")]) == 2
    assert not (tmp_path / "t.json").exists()
