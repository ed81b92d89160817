"""`stylehost bench latency` end to end through a JACK dummy server: a tiny bundle, several block sizes, the
block-size search, and the collector that keeps compute times of runs longer than the engine's ring."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks.jackserver import JackServer
from benchmarks.latency import ComputeCollector, parse_list
from diffusion.errors import StylehostError
from stylehost.cli import build_parser, main
from tests.export.tiny import tiny_bundle

ISSUE_KEYS = ["end_to_end_latency_ms", "algorithmic_latency_ms", "compute_ms_p50", "compute_ms_p99", "rtf",
              "dropouts", "backend", "device_name"]


@pytest.mark.jack
def test_tiny_bundle_on_cpu_writes_the_issue_keys(jack_server: JackServer, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    bundle = tiny_bundle(tmp_path / "models")
    out = tmp_path / "lat.json"
    assert main(["bench", "latency", "--seconds", "2", "--server", jack_server.name, "--model", str(bundle.path),
                 "--backend", "cpu", "--steps", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in [*ISSUE_KEYS, "compute_ms_max", "xruns", "cpu_percent", "pulse_delays_ms", "machine"]:
        assert key in result, key
    assert result["backend"] == "cpu" and result["steps"] == 1
    assert result["compute_calls"] > 0 and 0 < result["compute_ms_p50"] <= result["compute_ms_p99"]
    assert result["compute_ms_p99"] <= result["compute_ms_max"]
    # every pulse found is in the list; a pulse that a dropout swallowed is missing (how many: machine load, not
    # behaviour, which is why the benchmark reports pulses_found), but most must come back for a latency at all
    assert len(result["pulse_delays_ms"]) == result["pulses_found"] and 2 * result["pulses_found"] > result["pulses"]
    assert result["cpu_percent"] > 0 and result["machine"]["cores"] >= 1


@pytest.mark.jack
def test_several_block_sizes_and_the_search(jack_server: JackServer, tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    assert main(["bench", "latency", "--seconds", "1", "--server", jack_server.name, "--model", "passthrough",
                 "--blocksize", "128,256", "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert [r["blocksize"] for r in runs] == [128, 256]
    # The passthrough returns each pulse after exactly the latency the engine reports.
    for r in runs:
        assert r["end_to_end_latency_ms"] == pytest.approx(r["reported_latency_ms"], abs=0.1)
        assert r["steps"] is None  # the passthrough has no sampler: no invented steps
        # the budget written beside it names the terms of what was reported, the stream's buffers included
        assert r["latency_budget"][-1]["ms"] == pytest.approx(r["reported_latency_ms"], abs=0.01)
    found = tmp_path / "find.json"
    assert main(["bench", "latency", "--find-blocksize", "--seconds", "1", "--max-blocksize", "128", "--server",
                 jack_server.name, "--model", "passthrough", "--json", str(found)]) == 0
    (search,) = json.loads(found.read_text())["find_blocksize"]
    tried = [t["blocksize"] for t in search["tried"]]
    assert tried[0] == 64 and set(tried) <= {64, 128}  # doubling, stopped at --max-blocksize
    assert search["smallest_blocksize"] in (None, *tried)
    if search["smallest_blocksize"] is not None:
        assert search["tried"][-1]["dropouts"] == 0 and search["smallest_blocksize"] == tried[-1]


def test_collector_keeps_calls_beyond_the_engine_ring() -> None:
    """10,000 calls through a 4096-slot ring, polled often enough: every call is kept, in order."""
    engine = SimpleNamespace(_compute_times=np.zeros(4096), compute_count=0)
    collector = ComputeCollector(engine, interval=3600.0)  # polled by hand below, not by its thread
    for k in range(10_000):
        engine._compute_times[engine.compute_count % 4096] = k
        engine.compute_count += 1
        if k % 3000 == 2999:
            collector._collect()
    collector._collect()
    np.testing.assert_array_equal(collector.seconds(), np.arange(10_000))


def test_lists_are_checked() -> None:
    assert parse_list("64, 128", int, "blocksize") == [64, 128]
    with pytest.raises(StylehostError, match="--blocksize"):
        parse_list("64,big", int, "blocksize")


@pytest.mark.parametrize("option,value,reason", [
    ("--seconds", "nan", "nan is not a finite number"), ("--seconds", "inf", "inf is not a finite number"),
    ("--seconds", "0", "0 is outside [0.5, 3600]"), ("--seconds", "-5", "-5 is outside"),
    ("--margin-ms", "-1", "-1 is outside [0, 100]"), ("--margin-ms", "nan", "not a finite number"),
    ("--strength", "0", "0 is outside (0, 1]"), ("--strength", "1.5", "1.5 is outside (0, 1]"),
    ("--samplerate", "4000", "4000 is outside [8000, 192000]"), ("--samplerate", "48k", "not an integer"),
    ("--blocksize", "128,0", "0 is outside [16, 8192]"), ("--blocksize", "9000", "9000 is outside [16, 8192]"),
    ("--max-blocksize", "8", "8 is outside [16, 8192]"),
    ("--steps", "0", "0 is outside [1, 64]"), ("--steps", "1,65", "65 is outside [1, 64]"),
    ("--steps", "two", "not an integer"),
])
def test_numeric_options_are_range_checked_at_the_parser(
    option: str, value: str, reason: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """argparse's one line and exit 2, before any server or model is touched: never a traceback."""
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "latency", option, value])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"stylehost bench latency: error: argument {option}: ") and reason in last


def test_good_values_parse_to_numbers_and_lists() -> None:
    args = build_parser().parse_args(["bench", "latency", "--blocksize", "128, 256", "--steps", "1,2",
                                      "--seconds", "0.5", "--strength", "1", "--margin-ms", "0"])
    assert args.blocksize == [128, 256] and args.steps == [1, 2]
    assert (args.seconds, args.strength, args.margin_ms) == (0.5, 1.0, 0.0)
    defaults = build_parser().parse_args(["bench", "latency"])
    assert defaults.blocksize == [256] and defaults.steps is None and defaults.max_blocksize == 4096
