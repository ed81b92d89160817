"""Ctrl-C and SIGTERM close the panel as its close button does: exit 0, no abort, no traceback."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _as_from_a_terminal() -> None:
    """A job started in the background inherits SIGINT ignored (and Python then keeps it ignored):
    give the panel the default a terminal user has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _open_panel(tmp_path: Path) -> subprocess.Popen:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen([sys.executable, "-m", "stylehost", "gui", "--presets", str(tmp_path)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_from_a_terminal)
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sel.select(timeout=1) and "panel open" in proc.stdout.readline():
            return proc
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.kill()
    pytest.fail("the panel did not open within 60 s")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_closes_the_panel_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    proc = _open_panel(tmp_path)
    time.sleep(0.3)  # let the poll timer run a few times: the old abort came from a slot
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the panel ignored {sig.name}")
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "terminate" not in err
