"""A private JACK server never outlives the process that started it (a killed test run leaks none)."""

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_killed_owner_takes_its_jack_server_with_it() -> None:
    code = ("from realtime.jackserver import JackServer; s = JackServer().start(); print(s.name, flush=True); "
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
