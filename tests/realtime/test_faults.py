"""Faults while streaming through real JACK servers: the server stops, the model raises, streams restart.

A stream whose JACK server died is abandoned, not stopped (PortAudio 19.6 would wait 10 minutes, see
realtime/audio.py), and PortAudio cannot then be terminated in that process; so the server-death tests
run the session in a child process and kill *its* private server, leaving this process's PortAudio alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchmarks.jackserver import JackServer
from gui.controller import EngineController, StreamSettings
from realtime.audio import STALL_S
from realtime.processor import Processor, StftPassthroughProcessor
from tests.realtime.test_live_jack import assert_mostly_exact, stream_pulses

pytestmark = pytest.mark.jack
ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os, signal, threading, time
from diffusion.errors import StylehostError
from gui.controller import EngineController, StreamSettings
before = threading.active_count()
controller = EngineController()
controller.start(StreamSettings(input="system", output="system", model="passthrough"))
time.sleep(0.5)
started = controller.engine.blocks
os.kill(int(os.environ["JACKD_PID"]), getattr(signal, os.environ["JACKD_SIGNAL"]))
t0, message = time.monotonic(), None
while time.monotonic() - t0 < 10 and message is None:
    time.sleep(0.05)
    try:
        controller.check_alive()
    except StylehostError as exc:
        message = str(exc)
detected = time.monotonic() - t0
time.sleep(0.2)
print(json.dumps({"started": started, "message": message, "detected_s": detected, "before": before,
                  "after": threading.active_count(), "running": controller.running}), flush=True)
"""


def child_env(server: JackServer, sig: str = "SIGTERM") -> dict[str, str]:
    assert server._proc is not None
    return dict(os.environ, JACK_DEFAULT_SERVER=server.name, JACKD_PID=str(server._proc.pid), JACKD_SIGNAL=sig,
                OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGSTOP"])
def test_server_stop_mid_stream_is_reported_to_the_controller_and_leaks_no_thread(sig: str) -> None:
    """Guards LiveSession's death detection and abandon path: the GUI controller's check_alive raises one
    message within a second, its worker thread is joined (thread count back to the start), and the process
    exits promptly instead of hanging 10 minutes in PortAudio's stop or Pa_Terminate. SIGTERM: the server
    exits and PortAudio notices. SIGSTOP: the server hangs, PortAudio still says "active" and only the
    missing callbacks (STALL_S) tell."""
    server = JackServer().start()
    try:
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", CHILD], env=child_env(server, sig), cwd=ROOT,
                              capture_output=True, text=True, timeout=180)
        elapsed = time.monotonic() - t0
    finally:
        if server._proc is not None:
            os.kill(server._proc.pid, signal.SIGCONT)  # a stopped server ignores SIGTERM until continued
        server.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["started"] > 0 and result["message"] and "stopped" in result["message"], result
    assert result["detected_s"] < (3.0 if sig == "SIGTERM" else 3.0 + STALL_S) and not result["running"]
    assert result["after"] == result["before"], result  # the engine worker was joined
    assert elapsed < 120  # no 10-minute wait at exit


def test_live_command_exits_with_one_line_when_the_server_stops() -> None:
    """Guards `stylehost live`'s status loop check: exit 2 with one error line, not a frozen status line."""
    server = JackServer().start()
    try:
        cmd = [sys.executable, "-m", "stylehost", "live", "--style", "violin", "--model", "passthrough",
               "--input", "system", "--output", "system", "--seconds", "60"]
        proc = subprocess.Popen(cmd, env=child_env(server), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            for _ in range(5):
                if "Ctrl-C to stop" in proc.stdout.readline():
                    break
            time.sleep(0.5)
            assert server._proc is not None
            os.kill(server._proc.pid, signal.SIGTERM)
            t0 = time.monotonic()
            _, err = proc.communicate(timeout=60)
            waited = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        server.stop()
    errors = [line for line in err.splitlines() if line.startswith("stylehost: error")]
    assert proc.returncode == 2 and len(errors) == 1 and "audio server went away" in errors[0], err
    assert waited < 20


class FailsMidRun(StftPassthroughProcessor):
    """Raises on calls 200-229 (~0.25 s at 8 ms a call): a backend dying and coming back."""

    calls = 0

    def process(self, window, out) -> None:  # type: ignore[no-untyped-def]
        self.calls += 1
        if 200 <= self.calls < 230:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        super().process(window, out)


def test_backend_raising_mid_stream_falls_back_to_dry_at_the_same_latency(jack_server: JackServer) -> None:
    """Guards the worker's processor fault path live: the stream never dies, every pulse (during the fault
    too, played dry) arrives after exactly the reported latency, and the faults are counted and reported."""

    def make() -> Processor:
        return FailsMidRun()

    # 6 s (28 pulses), not 3: on a loaded VM a few pulses near the fault can be damaged, and 14 pulses left no
    # room for that; the median and the 80% rule still fail a latency that moves.
    engine, peaks, delays, _ = stream_pulses(jack_server, make, 6.0)
    assert_mostly_exact(delays, engine.latency.total)
    status = engine.status()
    assert status.processor_errors == 30 and "illegal memory access" in status.last_error
    assert min(peaks) > 0.4  # no pulse lost: the dry line filled in


def test_start_stop_cycles_and_a_fault_leak_no_threads(jack_server: JackServer) -> None:
    """Guards start/stop: three sessions (one with a failing model) leave the thread count as it was."""
    before = threading.active_count()
    controller = EngineController()
    for _ in range(3):
        controller.start(StreamSettings(input="system", output="system", model="passthrough"))
        time.sleep(0.3)
        controller.check_alive()
        engine = controller.engine
        assert engine is not None and engine.blocks > 0
        engine.processors[0].process = _raise  # type: ignore[method-assign]
        time.sleep(0.2)
        assert controller.status().processor_errors > 0  # type: ignore[union-attr]
        controller.check_alive()  # a failing model does not stop the stream
        controller.stop()
    assert threading.active_count() == before


def _raise(*args: object) -> None:
    raise RuntimeError("backend gone")
