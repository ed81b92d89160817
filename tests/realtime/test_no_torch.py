"""No torch on the live path: render, live and the panel's engine process run the shipped model without it.

Why it matters: torch is a large heap for the garbage collector to walk (a full collection took 46 ms
with it loaded, docs/live.md) and seconds of start-up. Checked in fresh processes, two ways: the
interpreter's own ``sys.modules``, and the process's memory map (no libtorch mapped), which also
covers the panel's spawned engine process. onnxruntime being mapped proves the model really ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks.jackserver import JackServer

ROOT = Path(__file__).resolve().parents[2]
# The torch-free bottom layer: what realtime/, export/bundle.py and gui/ build on.
BOTTOM = ("diffusion.errors", "diffusion.styles", "diffusion.spectrogram", "diffusion.noise", "diffusion.files",
          "realtime.engine", "realtime.model_processor", "realtime.render", "realtime.audio", "realtime.remote",
          "realtime.backends.choose", "realtime.backends.ort", "export.bundle", "gui.app")


def mapped(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_no_module_of_the_live_path_imports_torch() -> None:
    code = f"import importlib, sys\nfor m in {BOTTOM!r}:\n    importlib.import_module(m)\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_render_with_the_shipped_model_loads_no_torch(tmp_path: Path) -> None:
    t = np.arange(24000) / 48000
    sf.write(tmp_path / "in.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 48000)
    code = (
        "import sys\n"
        "from stylehost.cli import main\n"
        f"rc = main(['render', {str(tmp_path / 'in.wav')!r}, {str(tmp_path / 'out.wav')!r}, '--style', 'violin',"
        " '--no-progress'])\n"
        "maps = open('/proc/self/maps').read()\n"
        "print(rc, 'torch' in sys.modules, 'libtorch' in maps, 'onnxruntime' in maps)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-4:] == ["0", "False", "False", "True"], out.stdout + out.stderr


@pytest.mark.jack
def test_live_with_the_shipped_model_maps_no_torch(jack_server: JackServer) -> None:
    env = dict(os.environ, JACK_DEFAULT_SERVER=jack_server.name)
    proc = subprocess.Popen([sys.executable, "-m", "stylehost", "live", "--style", "violin", "--input", "system",
                             "--output", "system", "--seconds", "30"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while "onnxruntime" not in mapped(proc.pid) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.2)
        time.sleep(1.0)  # streaming by now
        maps = mapped(proc.pid)
        assert "onnxruntime" in maps and "libtorch" not in maps
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.mark.jack
def test_the_panels_engine_process_maps_no_torch(jack_server: JackServer) -> None:
    from realtime.remote import RemoteSession, SessionSpec

    session = RemoteSession(SessionSpec(model=str(ROOT / "models" / "default"), input="system", output="system"))
    session.start()
    try:
        maps = mapped(session._proc.pid)
        assert "onnxruntime" in maps and "libtorch" not in maps
    finally:
        session.stop()
