"""A private JACK server never outlives the process that started it (a killed test run leaks none), and
probing one server while PortAudio holds a client on another never crashes the process (issue 19)."""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.jackserver import JACK_REGISTRY, JackServer, live_server_slots, server_running

ROOT = Path(__file__).resolve().parents[2]


def test_killed_owner_takes_its_jack_server_with_it() -> None:
    code = ("from benchmarks.jackserver import JackServer; s = JackServer().start(); print(s.name, flush=True); "
            "import time; time.sleep(60)")
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    name = owner.stdout.readline().strip()
    assert name.startswith("stylehost-")
    assert subprocess.run(["pgrep", "-f", f"jackd -n {name}"], capture_output=True).returncode == 0
    owner.kill()  # SIGKILL: no fixture teardown, no atexit
    owner.wait()
    deadline = time.monotonic() + 5
    while subprocess.run(["pgrep", "-f", f"jackd -n {name}"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, f"jackd {name} outlived its owner"
        time.sleep(0.1)


@pytest.fixture
def ambient_server() -> Iterator[JackServer]:
    """A running server that is not the one asked for: what PortAudio connects to at import when it is
    JACK_DEFAULT_SERVER (a user's ``default`` server plays the same part). Not entered: this process's
    PortAudio stays where it was."""
    server = JackServer(name=f"ambient-{os.getpid()}-{uuid.uuid4().hex[:6]}").start()
    yield server
    server.stop()


def _bench(*args: str, default_server: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JACK_DEFAULT_SERVER=default_server)
    return subprocess.run([sys.executable, "-m", "stylehost", "bench", "latency", "--model", "passthrough",
                           "--seconds", "1", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.jack
def test_bench_latency_names_a_server_that_is_not_running_instead_of_crashing(ambient_server: JackServer) -> None:
    """Was rc 139 (Pa_Terminate) when another server was reachable: now one line naming both, exit 2."""
    missing = f"nosuch-{uuid.uuid4().hex[:6]}"
    done = _bench("--server", missing, default_server=ambient_server.name)
    assert done.returncode == 2, f"rc {done.returncode} (a segfault is -11): {done.stderr[-2000:]}"
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"stylehost: error: JACK server {missing!r} is not running (running: ")
    assert repr(ambient_server.name) in last
    assert "Traceback" not in done.stderr and "Fatal Python error" not in done.stderr


@pytest.mark.jack
def test_bench_latency_through_a_named_server_while_portaudio_sits_on_another(ambient_server: JackServer) -> None:
    """PortAudio holds a client on the ambient server; probing the named one must not leave libjack broken
    (a probe client in this process, even closed at once, made the next Pa_Terminate segfault)."""
    named = JackServer(name=f"named-{os.getpid()}-{uuid.uuid4().hex[:6]}").start()
    try:
        done = _bench("--server", named.name, default_server=ambient_server.name)
    finally:
        named.stop()
    assert done.returncode == 0, f"rc {done.returncode} (a segfault is -11): {done.stderr[-2000:]}"
    assert "end_to_end_latency_ms" in done.stdout


def test_a_server_that_is_not_running_is_reported_as_such() -> None:
    assert server_running(f"nosuch-{uuid.uuid4().hex[:6]}") is False


def _leak_server(name: str) -> None:
    """Start ``jackd -n name`` and SIGKILL it once it answers: its registry slot stays behind."""
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
    proc = subprocess.Popen(["jackd", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not server_running(name):
            assert proc.poll() is None and time.monotonic() < deadline, f"jackd {name} did not start"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()


def test_servers_killed_with_sigkill_do_not_use_up_jacks_eight_server_slots() -> None:
    """Guards reclaim_dead_server_slots: jack2 keeps 8 server slots and frees a SIGKILLed server's slot only
    when the same name starts again; with a new name per run, 8 such kills made every later jackd fail
    ("Failed to open server"), which failed 40 tests in one CI run."""
    leaked = [f"leak-{os.getpid()}-{i}-{uuid.uuid4().hex[:4]}" for i in range(8)]
    for name in leaked:
        _leak_server(name)
    registry = JACK_REGISTRY.read_bytes()
    assert all(name.encode() in registry for name in leaked)  # the slots are still taken
    server = JackServer().start()  # a ninth server: starts because the dead slots were reclaimed
    try:
        assert server_running(server.name)
        assert server.name in " ".join(live_server_slots())
    finally:
        server.stop()
    assert not any(name in " ".join(live_server_slots()) for name in leaked)


_KILL_UNDER_PORTAUDIO = """
import os, signal, time
import sounddevice as sd
from benchmarks.jackserver import JackServer
from diffusion.errors import StylehostError
with JackServer() as server:
    stream = sd.Stream(channels=2, samplerate=48000, blocksize=256)
    stream.start(); time.sleep(0.3); stream.stop(); stream.close()
    os.kill(server._proc.pid, signal.SIGKILL)  # the server dies under PortAudio's JACK client
    time.sleep(0.2)
try:
    with JackServer():
        pass
except StylehostError as exc:
    print("refused:", exc)
"""


def test_a_server_dying_under_portaudio_fails_clearly_instead_of_aborting_the_process() -> None:
    """PortAudio's JACK host API asserts when it cannot close its client (pa_jack.c Terminate), so a server
    that died mid-run aborted the whole pytest process at teardown. Now the exit leaves PortAudio alone and
    the next server is refused with a message; the process ends normally."""
    done = subprocess.run([sys.executable, "-c", _KILL_UNDER_PORTAUDIO], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2],
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused:" in done.stdout and "stopped answering" in done.stdout
