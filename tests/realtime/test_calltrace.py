"""The worker's per-call trace (realtime/calltrace.py): a record for every processor call, thread CPU within
wall time, backend parts timed, and late calls classified by what the records say: a processor that burns
CPU is "cpu", one that sleeps is "waiting", through a real JACK stream. No timed assertions beyond ratios."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from benchmarks.jackserver import JackServer
from realtime.audio import LiveSession
from realtime.calltrace import CLASSES, RECORD, classify, summarise, trace_report
from realtime.engine import Engine, EngineConfig
from realtime.processor import Processor, SlowProcessor, StftPassthroughProcessor

LATE = {40, 60, 80}  # the calls the slow processors below make late (~0.3-0.7 s into a stream)


class BusyProcessor(SlowProcessor):
    """SlowProcessor's twin that busy-loops instead of sleeping: ``sleep_s`` of this thread's own CPU time."""

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        if self.late_calls is None or self.calls in self.late_calls:
            start = time.thread_time()
            while time.thread_time() - start < self.sleep_s:
                pass
        self.calls += 1
        self.inner.process(window, out)


class FakeBackend:
    """A backend's ``run`` for the three graphs, each a little numpy work; ``name`` as a real one has."""

    name = "fake"

    def run(self, graph: str, *inputs: np.ndarray) -> np.ndarray:
        return np.tanh(np.ones(20_000, np.float32))


class BackendProcessor(StftPassthroughProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.backend: Any = FakeBackend()

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        for graph in ("frontend", "denoiser", "denoiser", "resynth"):
            self.backend.run(graph, window)
        super().process(window, out)


def _records(**columns: Any) -> np.ndarray:
    n = len(next(iter(columns.values())))
    rec = np.zeros(n, RECORD)
    for name, values in columns.items():
        rec[name] = values
    rec["wait"] = rec["wall"] - rec["cpu"]
    return rec


def _stream_offline(engine: Engine, blocks: int) -> None:
    x = np.random.default_rng(0).standard_normal((engine.config.blocksize, 1)).astype(np.float32) * 0.1
    out = np.zeros_like(x)
    for _ in range(blocks):
        engine.process_block(x, out)
        engine.pump()


def test_classes_follow_the_records() -> None:
    budget = 0.008
    rec = _records(wall=[0.005, 0.020, 0.020, 0.020, 0.012, 0.012],
                   cpu=[0.005, 0.019, 0.001, 0.005, 0.007, 0.001],
                   minflt=[0, 0, 0, 0, 0, 5000], majflt=[0, 0, 0, 1, 0, 0])
    assert list(classify(rec, budget)) == ["", "cpu", "waiting", "faults", "other", "faults"]
    summary = summarise(rec, budget, worst=2)
    assert summary["late"] == 5 and sum(summary["classes"].values()) == 5
    assert set(summary["classes"]) == set(CLASSES)
    assert [w["wall_ms"] for w in summary["worst"]] == [20.0, 20.0]


def test_off_by_default_and_a_record_for_every_call() -> None:
    engine = Engine(StftPassthroughProcessor, EngineConfig(blocksize=128))
    assert engine.trace is None
    _stream_offline(engine, 30)
    trace = engine.enable_trace(capacity=256)  # smaller than the calls made: the ring keeps the newest
    calls0 = engine.compute_count
    _stream_offline(engine, 1200)
    rec = trace.records()
    assert trace.count == engine.compute_count - calls0 > 256 and len(rec) == 256
    assert np.all(rec["cpu"] > 0) and np.all(rec["cpu"] <= rec["wall"])
    assert np.all(np.diff(rec["t"]) > 0)  # oldest first
    assert np.all(rec["processor"] <= rec["wall"]) and np.all(rec["resample"] > 0) and np.all(rec["mix"] > 0)
    np.testing.assert_allclose(rec["processor"], engine.compute_times()[-256:])  # the engine's own figure
    assert np.all(rec["level"] > 0.05)
    engine.disable_trace()
    made = trace.count
    _stream_offline(engine, 30)
    assert trace.count == made and engine.trace is None


def test_backend_graph_runs_are_parts_of_the_processor_call() -> None:
    engine = Engine(BackendProcessor, EngineConfig(blocksize=128))
    backend = engine.processors[0].backend  # type: ignore[attr-defined]
    trace = engine.enable_trace()
    assert engine.processors[0].backend.name == "fake"  # type: ignore[attr-defined]  # the proxy forwards
    _stream_offline(engine, 300)
    rec = trace.records()
    assert len(rec) == engine.compute_count > 0
    graphs = rec["frontend"] + rec["denoiser"] + rec["stage"]
    assert np.all(rec["frontend"] > 0) and np.all(rec["denoiser"] > 0) and np.all(rec["stage"] > 0)
    assert np.all(graphs <= rec["processor"])
    report = trace_report(trace)
    assert len(report["records"]["wall"]) == len(rec) and report["calls_made"] == len(rec)
    parts = report["over_stride"]["worst"][0]["parts_ms"]
    assert parts["processor_own"] >= 0
    engine.disable_trace()
    assert engine.processors[0].backend is backend  # type: ignore[attr-defined]


def test_the_graphs_a_processor_bound_are_parts_too() -> None:
    """The shipped streaming bundle binds every graph once (Backend.bind) before any trace exists: the backend's
    timer still puts each bound call in its part, and leaves with the trace."""
    from export.bundle import load_bundle
    from realtime.backends.choose import open_backend
    from realtime.commands import ModelFactory

    bundle = load_bundle("models/streaming")
    backend = open_backend(bundle, "cpu")
    engine = Engine(ModelFactory(bundle, backend), EngineConfig(blocksize=128, sample_rate=24000))
    trace = engine.enable_trace()
    _stream_offline(engine, 100)
    rec = trace.records()
    assert len(rec) > 50
    assert np.all(rec["frontend"] > 0) and np.all(rec["denoiser"] > 0) and np.all(rec["stage"] > 0)
    assert np.all(rec["frontend"] + rec["denoiser"] + rec["stage"] <= rec["processor"])
    engine.disable_trace()
    assert backend.timer is None


def _late_classes(make: Any, server: JackServer) -> tuple[list[str], np.ndarray, float]:
    live = LiveSession(make, input="system", output="system", blocksize=256, channels=1)
    trace = live.engine.enable_trace()  # before the stream: record k is processor call k
    with live:
        deadline = time.monotonic() + 10.0
        while trace.count < max(LATE) + 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    live.engine.disable_trace()
    rec = trace.records()
    assert len(rec) == live.engine.compute_count == live.engine.processors[0].calls  # type: ignore[attr-defined]
    classes = classify(rec, trace.budget_s)
    return [str(classes[c]) for c in sorted(LATE) if c < len(rec)], rec, trace.budget_s


@pytest.mark.jack
@pytest.mark.parametrize(("make", "expected"), [(BusyProcessor, "cpu"), (SlowProcessor, "waiting")])
def test_a_busy_processor_is_cpu_and_a_sleeping_one_is_waiting(
    jack_server: JackServer, make: type[Processor], expected: str
) -> None:
    def build() -> Processor:
        return make(StftPassthroughProcessor(), 0.02, set(LATE))  # type: ignore[call-arg]  # 2.5 strides

    late, rec, budget = _late_classes(build, jack_server)
    assert late and all(c == expected for c in late), late
    assert np.all(rec["cpu"] <= rec["wall"])
    slow = rec[rec["wall"] > budget]
    if expected == "cpu":
        assert np.any(slow["cpu"] > 2 * budget)
    else:
        assert np.any(slow["wait"] > 2 * budget)
