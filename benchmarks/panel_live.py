"""Dropouts with the panel open: the shipped model streaming, its spectrograms and meters running.

    python -m benchmarks.panel_live --seconds 60 --json benchmarks/results/panel_live.json

The performer's case of issue 16: `stylehost gui` as it runs (the engine in its own process, the window
on Qt's offscreen platform here), a private JACK dummy server (48 kHz, ``--blocksize`` period), the
default model at its recommended settings, and the bundled demo clip (demo/plucked_melody.flac) looped
into the input by a probe in a process of its own (a probe in the panel's process would be a Python
callback JACK waits on every cycle). The window's timer polls the engine and paints both spectrograms
and the meters for ``--seconds``; the engine's own counters give the dropouts and xruns. The DSP
passthrough runs the same way after the model (``--no-passthrough`` skips it) so the VM's share of
xruns is visible beside the model's.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import machine_info

DEMO = Path(__file__).resolve().parents[1] / "demo" / "plucked_melody.flac"


def _input(rate: int, seconds: float) -> np.ndarray:
    """The demo clip at the server's rate, looped to ``seconds`` (-6 dBFS peak)."""
    from math import gcd

    import soundfile as sf
    from scipy.signal import resample_poly

    audio, sr = sf.read(DEMO, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if sr != rate:
        g = gcd(sr, rate)
        audio = resample_poly(audio, rate // g, sr // g).astype(np.float32)
    audio *= 0.5 / max(1e-9, float(np.abs(audio).max()))
    reps = int(np.ceil(seconds * rate / len(audio)))
    return np.tile(audio, reps)[: int(seconds * rate)].astype(np.float32)


def run_one(model: str, seconds: float, blocksize: int) -> dict[str, Any]:
    from PyQt6.QtWidgets import QApplication

    from benchmarks.jackserver import JackServer, ProbeProcess, _jack, reinit_portaudio
    from gui.app import PanelWindow
    from gui.controller import EngineController

    app = QApplication.instance() or QApplication([])
    with JackServer(rate=48000, period=blocksize) as server:
        os.environ["JACK_DEFAULT_SERVER"] = server.name
        reinit_portaudio()
        window = PanelWindow(EngineController(separate_process=True))
        window.show()
        window.refresh_devices()
        for combo in (window.devices.input, window.devices.output):
            combo.setCurrentIndex(next(i for i in range(combo.count()) if "JACK" in combo.itemText(i)))
        if model == "passthrough":
            window.devices.model.setCurrentIndex(0)  # the list starts with the DSP passthrough
        else:
            window.devices.add_bundle(model)
        block = window.devices.block.findData(blocksize)
        if block < 0:
            raise SystemExit(f"the panel offers no block size {blocksize}")
        window.devices.block.setCurrentIndex(block)
        if not window.start_stream():
            raise SystemExit(f"the panel could not start: {window.last_message}")
        try:
            # The engine process's PortAudio client may be "PortAudio-NN": the panel's own device listing
            # holds the first name.
            lister = _jack().Client("stylehost-panel-live-lister", servername=server.name, no_start_server=True)
            ports = lister.get_ports("PortAudio.*:in_")
            lister.close()
            if not ports:
                raise SystemExit("the engine process opened no JACK input ports")
            with ProbeProcess(server.name, target=ports[-1].name.split(":")[0]) as probe:
                probe.connect()
                signal = _input(48000, seconds)
                player = threading.Thread(target=probe.play_and_record, args=(signal,), daemon=True)
                first = window.controller.status()
                columns = window.spec_out.columns_added
                start = time.monotonic()
                player.start()
                while time.monotonic() - start < seconds:
                    app.processEvents()
                    time.sleep(0.005)
                player.join(timeout=30)
                last = window.controller.status()
                painted = window.spec_out.columns_added - columns
        finally:
            window.stop_stream()
            window.close()
    assert first is not None and last is not None
    return {"model": model, "passthrough": window.controller.passthrough, "seconds": seconds,
            "blocksize": blocksize, "dropouts": last.dropouts - first.dropouts, "xruns": last.xruns - first.xruns,
            "latency_ms": last.latency_ms, "load": last.load, "overload": last.overload,
            "spectrogram_columns_painted": painted}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--blocksize", type=int, default=128)
    p.add_argument("--model", default="default", help="bundle the panel plays (folder or name)")
    p.add_argument("--no-passthrough", action="store_true", help="skip the passthrough run")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    from export.bundle import resolve

    model = str(resolve(args.model))
    runs = [run_one(model, args.seconds, args.blocksize)]
    if not args.no_passthrough:
        runs.append(run_one("passthrough", args.seconds, args.blocksize))
    report = {"runs": runs, "machine": machine_info()}
    for r in runs:
        print(f"{r['model']}: {r['dropouts']} dropouts, {r['xruns']} xruns in {r['seconds']:g} s at block "
              f"{r['blocksize']}; latency {r['latency_ms']:.2f} ms, load {r['load']:.2f}, "
              f"{r['spectrogram_columns_painted']} spectrogram columns painted")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
