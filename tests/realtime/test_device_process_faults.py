"""A JACK server that goes away under a device process (realtime/device_process.py): the session's check()
raises the same one line as with the callback in the engine's process, soon, and stop() returns at once.

As in test_faults.py the session runs in a child process on a private server that the test kills: the
child's own PortAudio (the one that listed the devices) holds a client on the dying server, and that process
cannot terminate PortAudio cleanly afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.jackserver import JackServer
from realtime.audio import STALL_S

pytestmark = pytest.mark.jack
ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os, signal, time
from diffusion.errors import StylehostError
from realtime.audio import LiveSession
from realtime.processor import StftPassthroughProcessor
live = LiveSession(StftPassthroughProcessor, input="system", output="system", blocksize=256, channels=1,
                   callback_process=True).start()
deadline = time.monotonic() + 10
while live.engine.blocks < 20 and time.monotonic() < deadline:
    time.sleep(0.05)
started = live.engine.blocks
device_pid = live._device._proc.pid
os.kill(int(os.environ["JACKD_PID"]), getattr(signal, os.environ["JACKD_SIGNAL"]))
t0, message = time.monotonic(), None
while time.monotonic() - t0 < 15 and message is None:
    time.sleep(0.05)
    try:
        live.check()
    except StylehostError as exc:
        message = str(exc)
detected = time.monotonic() - t0
t1 = time.monotonic()
live.stop()
stopped = time.monotonic() - t1
gone = not os.path.exists(f"/proc/{device_pid}")
print(json.dumps({"started": started, "message": message, "detected_s": detected, "stop_s": stopped,
                  "device_process_gone": gone}), flush=True)
os._exit(0)  # this process's PortAudio client sits on the dead server: no Pa_Terminate
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGSTOP"])
def test_a_server_that_goes_away_is_reported_by_check(sig: str) -> None:
    """SIGTERM: PortAudio ends the stream in the device process. SIGSTOP: the server hangs, PortAudio still
    says "active" and only the callbacks that stop coming (STALL_S) tell."""
    server = JackServer().start()
    try:
        assert server._proc is not None
        env = dict(os.environ, JACK_DEFAULT_SERVER=server.name, JACKD_PID=str(server._proc.pid), JACKD_SIGNAL=sig,
                   PYTHONPATH=str(ROOT))
        proc = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=180)
    finally:
        if server._proc is not None:
            os.kill(server._proc.pid, signal.SIGCONT)  # a stopped server ignores SIGTERM until continued
        server.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["started"] >= 20 and result["message"] and "audio server went away" in result["message"], result
    assert result["detected_s"] < 5.0 + (STALL_S if sig == "SIGSTOP" else 0.0), result  # room for a loaded CI machine
    assert result["stop_s"] < 12 and result["device_process_gone"], result  # no 10-minute wait in PortAudio
