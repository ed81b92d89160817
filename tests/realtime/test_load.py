"""Load: parameters hammered from several threads while streaming, and the short soak (offline pump).

The long soak (10 minutes of audio through JACK) is ``python -m benchmarks.soak --minutes 10 --json
benchmarks/results/soak.json``; this runs the same code for 24 s of audio."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import numpy as np
import pytest

from benchmarks.jackserver import JackServer
from benchmarks.soak import soak_offline
from realtime.audio import LiveSession
from realtime.engine import Engine, EngineConfig
from realtime.params import EngineParams
from realtime.processor import StftPassthroughProcessor


class ConsistencyChecker(StftPassthroughProcessor):
    """Checks every snapshot it receives is one writer's whole snapshot: steps, strength and the style
    mix are all derived from the same k, so a torn update (fields from two writes) shows as a mismatch."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self.torn: list[dict[str, Any]] = []

    def set_params(self, **params: Any) -> None:
        self.seen += 1
        k = round(params["strength"] * 1000)
        mix = params["style_mix"]
        cello = mix.get("cello", 0.0)
        if params["steps"] != 1 + k % 4 or abs(cello - k / (k + 1000)) > 1e-9:
            self.torn.append(params)


def snapshot(k: int) -> dict[str, Any]:
    return {"strength": k / 1000, "steps": 1 + k % 4, "style_mix": (("violin", 1.0), ("cello", k / 1000))}


@pytest.mark.jack
def test_params_hammered_from_threads_while_streaming(jack_server: JackServer) -> None:
    """Guards the snapshot swap (EngineParams frozen, one reference, writers serialised): four threads
    write whole snapshots and partial updates as fast as they can while the stream runs; the worker
    never sees a torn snapshot, nothing raises, the stream stays alive and the last write wins."""
    errors: list[BaseException] = []
    stop = threading.Event()
    first = EngineParams(**snapshot(0))
    with LiveSession(ConsistencyChecker, input="system", output="system", blocksize=256, params=first) as live:
        engine = live.engine

        def writer(seed: int) -> None:
            rng = np.random.default_rng(seed)
            try:
                while not stop.is_set():
                    k = int(rng.integers(0, 1001))
                    if rng.random() < 0.5:
                        engine.set_params(EngineParams(**snapshot(k), wet=float(rng.random())))
                    else:
                        engine.set_params(**snapshot(k), input_gain_db=float(rng.uniform(-6, 6)))
                    if rng.random() < 0.01:
                        time.sleep(0.001)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join()
        engine.set_params(**snapshot(7))
        deadline = time.monotonic() + 3.0  # the worker applies it between blocks; a loaded CI box may be slow
        while engine._applied is not engine.params and time.monotonic() < deadline:
            time.sleep(0.05)
        live.check()
        proc = engine.processors[0]
        assert isinstance(proc, ConsistencyChecker)
        assert not errors and not proc.torn and proc.seen > 20
        assert engine.processor_errors == 0 and engine.worker_errors == 0
        assert engine.params.strength == 0.007 and engine._applied is engine.params


def test_partial_updates_from_threads_are_never_lost() -> None:
    """Guards the writers' lock in Engine.set_params: four threads each own one field and change only it
    (partial updates) as fast as they can while the worker streams; before every write a thread checks the
    engine still holds its own last value. Without the lock a partial update built on a stale snapshot
    silently reverts another thread's field (a knob jumping back on stage). A tiny GIL switch interval makes
    the threads interleave inside set_params instead of once every 5 ms."""
    engine = Engine(StftPassthroughProcessor, EngineConfig(sample_rate=24000, blocksize=256))
    values = {
        "strength": lambda k: (k % 1000) / 1000,
        "wet": lambda k: (k * 7 % 1000) / 1000,
        "input_gain_db": lambda k: -(k % 600) / 10,
        "steps": lambda k: 1 + k % 50,
    }
    lost: list[str] = []
    stop = threading.Event()

    def writer(name: str) -> None:
        last = getattr(engine.params, name)
        for k in range(1, 3001):
            now = getattr(engine.params, name)
            if now != last:
                lost.append(f"{name}: wrote {last}, found {now}")
            last = values[name](k)
            engine.set_params(**{name: last})

    def stream() -> None:  # the callback side: blocks in, the worker applies each new snapshot
        block, out = np.zeros((256, 1), np.float32), np.zeros((256, 1), np.float32)
        while not stop.is_set():
            engine.process_block(block, out)
            time.sleep(0.002)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    engine.start()
    feeder = threading.Thread(target=stream)
    feeder.start()
    try:
        threads = [threading.Thread(target=writer, args=(name,)) for name in values]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
        stop.set()
        feeder.join()
        engine.stop()
    assert not lost, f"{len(lost)} updates lost, e.g. {lost[:3]}"
    assert engine.worker_errors == 0 and engine.processor_errors == 0


def test_short_soak_no_growth_in_memory_latency_or_dropouts() -> None:
    """Guards against leaks and drift in the engine path (rings, resamplers, taps, counters): 24 s of
    48 kHz audio in 256-sample blocks; Python-level memory after warm-up grows < 64 KB, every chunk's
    pulses arrive at exactly the reported latency, no dropouts."""
    result = soak_offline(24.0, chunk_s=4.0)
    summary = result["summary"]
    assert summary["chunks"] == 6 and all(c["pulses"] >= 10 for c in result["chunks"])
    assert summary["traced_growth_bytes"] < 64 * 1024, result["chunks"]
    assert summary["max_latency_error_samples"] < 0.5
    assert summary["dropouts"] == 0
