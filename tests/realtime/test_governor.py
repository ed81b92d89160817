"""An overloaded engine degrades (fewer steps, then dry) and recovers, instead of crackling or hanging."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.jackserver import JackServer
from realtime.audio import LiveSession
from realtime.governor import GovernorConfig, LoadGovernor
from realtime.params import EngineParams
from realtime.processor import StftPassthroughProcessor

ROOT = Path(__file__).resolve().parents[2]
STRIDE_S = 0.008


def run(gov: LoadGovernor, seconds: float, load_per_step: float, fixed: float = 0.0) -> list[int]:
    """Feed ``seconds`` of calls whose cost is fixed + cap * load_per_step strides; return the caps seen."""
    caps = []
    for _ in range(round(seconds / STRIDE_S)):
        if gov.cap == 0:
            gov.idle()
        else:
            gov.observe(STRIDE_S * (fixed + gov.cap * load_per_step))
        caps.append(gov.cap)
    return caps


def test_steps_down_until_the_compute_fits_and_says_so() -> None:
    gov = LoadGovernor(STRIDE_S, steps=8)
    caps = run(gov, 10.0, load_per_step=0.19)  # 8 steps = 152% of the stride
    assert caps[0] == 8 and gov.cap == 3  # 3 x 0.19 = 57%: fits; 4 would be 76%
    assert gov.degraded == "OVERLOAD: 3 of 8 steps"
    assert caps == sorted(caps, reverse=True)  # never climbs back into the overload


def test_a_single_stall_costs_no_step() -> None:
    gov = LoadGovernor(STRIDE_S, steps=2)
    for k in range(2000):
        gov.observe(0.120 if k % 500 == 250 else 0.3 * STRIDE_S)  # a 120 ms stall every 4 s
    assert gov.cap == 2 and gov.changes == 0 and gov.degraded == ""


def test_goes_dry_when_one_step_is_too_slow_and_retries_with_backoff() -> None:
    cfg = GovernorConfig()
    gov = LoadGovernor(STRIDE_S, steps=2, config=cfg)
    caps = run(gov, 30.0, load_per_step=1.5)
    assert gov.degraded in ("OVERLOAD: playing dry (model paused)", "OVERLOAD: 1 of 2 steps")
    dry = np.asarray(caps) == 0
    assert dry.mean() > 0.8  # mostly dry; the retries are short
    # Retries (dry -> 1) happen after 2 s, then 4 s, 8 s...: their gaps grow.
    retries = np.flatnonzero(np.diff(dry.astype(int)) == -1)
    gaps = np.diff(retries)
    assert len(retries) >= 2 and np.all(np.diff(gaps) > 0)


def test_climbs_back_when_the_machine_is_quiet_again() -> None:
    gov = LoadGovernor(STRIDE_S, steps=4)
    run(gov, 5.0, load_per_step=0.4)  # busy machine: 4 steps = 160%, 1 step = 40%
    assert gov.cap == 1
    caps = run(gov, 20.0, load_per_step=0.1)  # quiet: 4 steps = 40%
    assert gov.cap == 4 and gov.degraded == "" and max(caps) == 4


def test_climbs_back_from_dry() -> None:
    gov = LoadGovernor(STRIDE_S, steps=2)
    run(gov, 5.0, load_per_step=1.2)
    assert gov.cap == 0
    run(gov, 20.0, load_per_step=0.1)
    assert gov.cap == 2


def test_a_new_request_is_taken_at_its_word() -> None:
    gov = LoadGovernor(STRIDE_S, steps=8)
    run(gov, 10.0, load_per_step=0.19)
    assert gov.request(2) == 2 and gov.degraded == ""


def test_dropouts_at_a_busy_load_cost_a_step_but_never_the_last() -> None:
    gov = LoadGovernor(STRIDE_S, steps=3)
    dropouts = 0
    for k in range(round(10.0 / STRIDE_S)):
        dropouts += k % 100 == 0  # a click every 0.8 s, with calls at 60% of the stride per... whatever cap
        gov.observe(0.6 * STRIDE_S, dropouts)
    assert gov.cap == 1  # 3 -> 2 -> 1, never dry: a click now and then beats no model at all


class StepCost(StftPassthroughProcessor):
    """The STFT passthrough with a model's cost: busy-waits ``per_step`` seconds for each sampler step."""

    per_step = 0.003

    def __init__(self) -> None:
        super().__init__()
        self.steps = 1
        self.steps_seen: list[int] = []

    def set_params(self, **params: Any) -> None:
        if "steps" in params:
            self.steps = int(params["steps"])
            self.steps_seen.append(self.steps)

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        end = time.perf_counter() + self.per_step * self.steps
        while time.perf_counter() < end:
            pass
        super().process(window, out)


@pytest.mark.jack
def test_overloaded_live_engine_steps_down_stops_dropping_and_stops_at_once(jack_server: JackServer) -> None:
    # 8 steps x 3 ms = 24 ms per 8 ms stride: 300% load. The governor must bring it to 1-2 steps.
    with LiveSession(StepCost, input="system", output="system", blocksize=256,
                     params=EngineParams(steps=8)) as live:
        engine = live.engine
        deadline = time.monotonic() + 20.0
        while engine.governor.cap > 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        status = engine.status()
        assert engine.governor.cap <= 2, status
        assert "of 8 steps" in status.overload or "dry" in status.overload
        assert status.steps_running == engine.governor.cap and "OVERLOAD" in status.line()
        time.sleep(1.0)  # let the backlog drain
        before = engine.dropouts
        time.sleep(3.0)
        # It plays again: ~570 dropouts in 3 s at 300% load. Compared within the run (a noisy VM costs dozens in
        # some runs even at 75% load): at most half of what the overloaded phase dropped, or 15.
        assert engine.dropouts - before <= max(15, before // 2), (engine.dropouts - before, before)
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 2.0  # stopping never waits on a queue of late calls


@pytest.mark.jack
def test_hopeless_model_plays_dry_at_the_same_latency(jack_server: JackServer) -> None:
    class Hopeless(StepCost):
        per_step = 0.030  # 30 ms per call at 1 step: 375% of the stride

    with LiveSession(Hopeless, input="system", output="system", blocksize=256, params=EngineParams(steps=2)) as live:
        engine = live.engine
        deadline = time.monotonic() + 20.0
        while engine.governor.cap != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert engine.status().overload == "OVERLOAD: playing dry (model paused)"
        changes = engine.governor.changes
        deadline = time.monotonic() + 10.0
        while engine.governor.changes < changes + 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the first retry (2 s after going dry), one late call, dry again
        assert engine.governor.cap == 0 and engine.governor.changes == changes + 2
        time.sleep(0.5)
        before = engine.dropouts
        time.sleep(3.0)  # the next retry comes 4 s after the first
        assert engine.dropouts - before <= 15  # dry plays on time (hundreds if the model ran); a noisy VM costs a few


@pytest.mark.jack
def test_live_with_too_many_steps_stops_cleanly_on_ctrl_c(jack_server: JackServer, tmp_path: Path) -> None:
    """The shipped model at 8 steps on this CPU: before the governor, Ctrl-C aborted (rc 134)."""
    env = dict(os.environ, JACK_DEFAULT_SERVER=jack_server.name, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "stylehost", "live", "--style", "violin", "--input", "system",
                             "--output", "system", "--steps", "4", "--blocksize", "256"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as from a terminal
    time.sleep(8.0)
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("live did not stop within 30 s of Ctrl-C")
    assert proc.returncode in (0, 130), err
    assert "terminate called" not in err and "Traceback" not in err
    assert time.monotonic() - t0 < 5.0


def test_pump_returns_while_input_keeps_arriving() -> None:
    """The worker's pump handles what was waiting, then returns: with a model slower than real time and
    input still arriving, an unbounded loop never came back to see the stop flag or the catch-up skip."""
    import threading

    from realtime.engine import Engine, EngineConfig
    from realtime.processor import SlowProcessor

    engine = Engine(lambda: SlowProcessor(StftPassthroughProcessor(), sleep_s=0.004),
                    EngineConfig(sample_rate=24000, blocksize=64))
    stop = threading.Event()
    block, out = np.zeros((64, 1), np.float32), np.zeros((64, 1), np.float32)

    def feed() -> None:  # a device delivering 64 samples every 0.5 ms: far faster than the model
        while not stop.is_set():
            engine.process_block(block, out)
            time.sleep(0.0005)

    feeder = threading.Thread(target=feed, daemon=True)
    for _ in range(3):  # one stride waiting (no catch-up skip): each call sleeps while 8 more blocks arrive
        engine.process_block(block, out)
    feeder.start()
    watchdog = threading.Timer(8.0, stop.set)  # the unbounded loop ends only when the input stops
    watchdog.start()
    try:
        t0 = time.monotonic()
        engine.pump()
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        watchdog.cancel()
        feeder.join()
    assert elapsed < 3.0


def test_one_step_at_a_high_load_that_fits_keeps_playing() -> None:
    """A mean load above high_load costs a step while there are steps to spare, but at one step only late calls
    take the model off: at 80% of the stride, no call late, the model plays on (it went dry for 2 s at a time)."""
    gov = LoadGovernor(STRIDE_S, steps=2)
    caps = run(gov, 10.0, load_per_step=0.4)  # 2 steps = 80%, 1 step = 40%
    assert gov.cap == 1
    gov = LoadGovernor(STRIDE_S, steps=1)
    caps = run(gov, 10.0, load_per_step=0.8)
    assert min(caps) == 1 and gov.changes == 0 and gov.degraded == ""
    gov = LoadGovernor(STRIDE_S, steps=1)
    caps = run(gov, 10.0, load_per_step=0.95)  # every call past `late`: dry, as before
    assert np.mean(np.asarray(caps) == 0) > 0.5
