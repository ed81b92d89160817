"""Save a screenshot of the running panel (docs/panel.png) without a display or a sound card.

Starts a private JACK dummy server, streams a test signal (a chord with a vibrato melody) into the
panel's input through a JACK client, lets the readouts and spectrograms fill, and grabs the window
offscreen (QWidget.grab). Usage: QT_QPA_PLATFORM=offscreen python scripts/panel_screenshot.py [out.png]
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from benchmarks.jackserver import JackServer, LoopbackProbe  # noqa: E402
from gui.app import PanelWindow, share_gil_with_audio  # noqa: E402
from gui.presets import PresetStore  # noqa: E402


def test_signal(rate: int, seconds: float) -> np.ndarray:
    """A soft pad chord plus a melody with vibrato: something a spectrogram shows clearly."""
    t = np.arange(int(rate * seconds)) / rate
    chord = sum(0.06 * np.sin(2 * np.pi * f * t) for f in (130.8, 196.0, 261.6))
    notes = np.array([392.0, 440.0, 523.3, 587.3, 659.3, 587.3, 523.3, 440.0])
    f = notes[(t * 4).astype(int) % len(notes)] * (1 + 0.006 * np.sin(2 * np.pi * 5.5 * t))
    melody = 0.25 * np.sin(2 * np.pi * np.cumsum(f) / rate) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2)
    harmonics = 0.08 * np.sin(4 * np.pi * np.cumsum(f) / rate)
    return (chord + melody + harmonics).astype(np.float32)


def main(out: str = "docs/panel.png", tmp_presets: str = "/tmp/stylehost-shot-presets") -> int:
    share_gil_with_audio()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with JackServer(rate=48000, period=256) as server:
        window = PanelWindow(presets=PresetStore(tmp_presets))
        window.resize(1280, 720)
        window.show()
        window.styles.pad.set_position(0.35, 0.45)  # a violin/guitar/organ blend
        for i in range(window.devices.model.count()):  # the shipped model, when there is one
            if str(window.devices.model.itemData(i) or "").rstrip("/").endswith("models/default"):
                window.devices.model.setCurrentIndex(i)
        window.transfer.strength.setValue(70)  # the shipped model's recommended setting (1 step, 0.7)
        window.transfer.steps[1].click()
        for i in range(window.devices.input.count()):  # the JACK device, not ALSA's
            if "JACK" in window.devices.input.itemText(i):
                window.devices.input.setCurrentIndex(i)
                window.devices.output.setCurrentIndex(i)
                break
        if not window.start_stream():
            print(window.last_message, file=sys.stderr)
            return 1
        with LoopbackProbe(server.name) as probe:
            probe.connect()
            signal = test_signal(probe.client.samplerate, 6.0)
            player = threading.Thread(target=probe.play_and_record, args=(signal,))
            player.start()
            deadline = time.monotonic() + 4.5
            while time.monotonic() < deadline:
                app.processEvents()
                time.sleep(0.01)
            pixmap = window.grab()
            player.join()
            window.stop_stream()
        window.close()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pixmap.save(out)
    print(f"wrote {out} ({pixmap.width()}x{pixmap.height()})")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
