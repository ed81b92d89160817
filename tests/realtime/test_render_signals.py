"""`stylehost render` stopped from outside: SIGTERM and SIGHUP (timeout(1), service managers, a closed
terminal) clean up like Ctrl-C; a temp file left by SIGKILL is removed by the next render of that OUT.

Real processes, real signals: the render command runs in a child process on a 10-minute input (about
15 s of work here) and is signalled as soon as its temp file exists.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from realtime.processor import StftPassthroughProcessor
from realtime.render import render_file, temp_path

ROOT = Path(__file__).resolve().parents[2]
RATE = 24000
# The child starts from the default dispositions whatever the test runner inherited (under nohup,
# SIGHUP is ignored, and an ignored signal is rightly left ignored by the render).
CHILD = ("import signal, sys; signal.signal(signal.SIGTERM, signal.SIG_DFL); "
         "signal.signal(signal.SIGHUP, signal.SIG_DFL); from stylehost.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.fixture(scope="module")
def long_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 minutes of a quiet tone: far longer than it takes to signal the render."""
    path = tmp_path_factory.mktemp("signals") / "long.wav"
    chunk = (0.1 * np.sin(np.arange(RATE) * 0.05)).astype(np.float32)
    with sf.SoundFile(path, "w", samplerate=RATE, channels=1, subtype="PCM_16") as f:
        for _ in range(600):
            f.write(chunk)
    return path


def start_render(src: Path, out: Path) -> tuple[subprocess.Popen, Path]:
    """The render command in a child process, once its temp file beside OUT exists (it is rendering)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, "render", str(src), str(out), "--style", "violin", "--model", "passthrough",
         "--no-progress"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    tmp = temp_path(out, proc.pid)
    deadline = time.monotonic() + 120
    while not tmp.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"the render never started writing (rc {proc.returncode}): {err}")
        time.sleep(0.02)
    time.sleep(0.3)  # well inside the render
    return proc, tmp


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_mid_render_removes_the_temp_and_exits_128_plus_the_signal(
    long_input: Path, tmp_path: Path, signum: int
) -> None:
    """Guards the render's termination handlers: the signal becomes an exception, so the temp file is
    removed and OUT kept as it was, and the exit status is 128 + the signal, as a shell reports it."""
    out = tmp_path / "out.wav"
    sf.write(out, np.full((480, 1), 0.25, np.float32), RATE)
    before = out.read_bytes()
    proc, tmp = start_render(long_input, out)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert temps(tmp_path) == [], f"temp files left behind: {temps(tmp_path)} (rc {proc.returncode})"
    assert proc.returncode == 128 + signum, (proc.returncode, err)
    assert f"stopped by {signal.Signals(signum).name}" in err and out.read_bytes() == before


def test_a_temp_left_by_a_killed_render_is_removed_by_the_next_render_of_that_out(
    long_input: Path, tmp_path: Path
) -> None:
    """Guards the stale-temp sweep: SIGKILL cannot be caught, so its temp file stays; the next render of
    the same OUT removes temps whose process is gone, and keeps those of a live process (a render still
    running) and those of other OUT names."""
    out = tmp_path / "out.wav"
    proc, killed = start_render(long_input, out)
    proc.kill()
    proc.communicate(timeout=60)
    assert killed.exists()  # what SIGKILL leaves
    with running() as live_pid:
        live = temp_path(out, live_pid)
        live.write_bytes(b"another render, still running")
        other = temp_path(tmp_path / "other.wav", proc.pid)
        other.write_bytes(b"another OUT's temp")
        sf.write(tmp_path / "in.wav", np.zeros((2400, 1), np.float32), RATE)
        render_file(tmp_path / "in.wav", out, StftPassthroughProcessor, progress=False)
        assert temps(tmp_path) == sorted([live.name, other.name])


class running:
    """A live process that is not a render (its PID must not be swept)."""

    def __enter__(self) -> int:
        self.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        return self.proc.pid

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()
