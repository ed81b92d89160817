"""benchmarks.latency_ab: interleaved order and its table (the runs themselves are `bench latency`, tested there)."""

from __future__ import annotations

from benchmarks.latency_ab import table


def test_the_table_lists_each_bundles_runs_in_order_and_says_when_all_failed() -> None:
    runs = [{"round": 0, "model": "a", "end_to_end_latency_ms": 41.125, "dropouts": 3, "xruns": 10,
             "compute_ms_p99": 7.51},
            {"round": 0, "model": "b", "error": "jackd exited"},
            {"round": 1, "model": "a", "end_to_end_latency_ms": 41.125, "dropouts": 0, "xruns": 2,
             "compute_ms_p99": 7.0}]
    md = table(runs, ("a", "b"), "python -m benchmarks.latency_ab a b", 128, 20.0)
    assert "| a | 41.12 | 3, 0 | 10, 2 | 7.5, 7.0 |" in md
    assert "| b | failed |" in md and "block 128, 20 s each" in md
