"""`stylehost gui`: the performer's panel around an EngineController.

The window never touches the audio path directly: controls build EngineParams snapshots that the
controller hands to Engine.set_params, and a QTimer polls Engine.status() and the engine's taps.
Polling is pull-only, so a stalled GUI thread only makes the readouts late; the engine's callback
and worker never wait on it. Every user-facing failure (no device, a bundle that will not load, a
bad preset) is a StylehostError shown in a message box and the status bar, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from functools import partial

import numpy as np
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QKeySequence, QShortcut
from PyQt6.QtWidgets import (
    QApplication,
    QGridLayout,
    QHBoxLayout,
    QMainWindow,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from diffusion.errors import StylehostError
from diffusion.styles import STYLE_NAMES
from gui.controller import EngineController
from gui.controls import SHORTCUT_STYLES, PresetBar, ReadoutPanel, StylePanel, TransferPanel
from gui.devicebar import DeviceBar
from gui.presets import Preset, PresetStore
from gui.widgets.spectrogram import SpectrogramView
from realtime.commands import PASSTHROUGH_NOTICE
from realtime.params import EngineParams

POLL_MS = 50  # 20 readout updates a second; the engine's peaks accumulate between polls
GIL_SWITCH_S = 0.0005  # see share_gil_with_audio


def share_gil_with_audio() -> None:
    """Let the audio threads take the GIL within 0.5 ms instead of CPython's default 5 ms.

    Only matters when the engine runs in the panel's process (``--same-process``, tests); by default
    `stylehost gui` runs it in its own process (realtime/remote.py) and shares no GIL with it.

    Why: the panel runs in the same interpreter as the PortAudio callback and the engine worker.
    With the default interval, a GUI thread busy in Python (a long repaint, a burst of events)
    keeps them waiting up to 5 ms per hand-over, longer than a 256-sample block at 48 kHz: measured
    on the 2-core dev box with training running, 0.5 s of pure-Python GUI work caused ~40 dropouts
    at 5 ms and 3-5 at 0.5 ms (tests/gui/test_panel_jack.py). Set once at the entry point.
    """
    sys.setswitchinterval(GIL_SWITCH_S)


STYLESHEET = """
QMainWindow, QWidget { background: #23262e; color: #e6e6e6; }
QGroupBox { border: 1px solid #3a3f4b; border-radius: 6px; margin-top: 14px; padding: 6px; font-weight: 600; }
QGroupBox::title { subcontrol-origin: margin; left: 10px; padding: 0 4px; color: #9fb4d8; }
QPushButton { background: #313640; border: 1px solid #4a5060; border-radius: 4px; padding: 4px 10px; }
QPushButton:hover { background: #3b414d; }
QPushButton:checked { background: #ffb347; color: #1e2129; font-weight: 700; }
QPushButton:focus, QComboBox:focus, QSlider:focus { border: 1px solid #ffb347; }
QCheckBox:focus { color: #ffb347; }
QCheckBox::indicator { width: 14px; height: 14px; border: 1px solid #8a8f99; border-radius: 3px; background: #2b2f38; }
QCheckBox::indicator:checked { background: #ffb347; border-color: #ffb347; }
QPushButton:disabled, QComboBox:disabled { color: #777; }
QComboBox { background: #2b2f38; border: 1px solid #4a5060; border-radius: 4px; padding: 2px 6px; }
QToolTip { background: #fdf6e3; color: #222; border: 1px solid #999; }
QStatusBar { color: #c0c0c0; }
"""


class PanelWindow(QMainWindow):
    """The performer's panel: devices and model, styles and mix pad, transfer controls, readouts."""

    def __init__(self, controller: EngineController | None = None, presets: PresetStore | None = None) -> None:
        super().__init__()
        self.controller = controller or EngineController()
        self.presets = presets or PresetStore()
        self.last_message = ""  # the most recent error shown (tests read it; users see the box)
        self.setWindowTitle("stylehost")
        self.setStyleSheet(STYLESHEET)
        self.devices = DeviceBar()
        self.styles = StylePanel()
        self.transfer = TransferPanel()
        self.readouts = ReadoutPanel()
        self.preset_bar = PresetBar()
        self.spec_in = SpectrogramView("Input")
        self.spec_out = SpectrogramView("Output")
        self._build_layout()
        self._connect()
        self._tap_buf = np.zeros(0, np.float32)
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self.timer.start()
        self.refresh_devices()
        self.refresh_presets()
        self.show_params(self.controller.params)
        self.resize(1280, 720)

    # ---- construction ------------------------------------------------------------------------------

    def _build_layout(self) -> None:
        middle = QGridLayout()
        middle.addWidget(self.styles, 0, 0, 2, 1)
        middle.addWidget(self.transfer, 0, 1)
        middle.addWidget(self.preset_bar, 1, 1)
        middle.addWidget(self.readouts, 0, 2, 2, 1)
        middle.setColumnStretch(0, 5)
        middle.setColumnStretch(1, 4)
        middle.setColumnStretch(2, 3)
        middle.setRowStretch(0, 1)  # the preset row keeps its natural height
        specs = QHBoxLayout()
        specs.addWidget(self.spec_in)
        specs.addWidget(self.spec_out)
        root = QVBoxLayout()
        root.addWidget(self.devices)
        root.addLayout(middle, 5)
        root.addLayout(specs, 3)
        central = QWidget()
        central.setLayout(root)
        self.setCentralWidget(central)
        self.statusBar().showMessage("Stopped. Choose devices and press Start (Ctrl+Return).")  # type: ignore[union-attr]

    def _connect(self) -> None:
        self.devices.start_button.clicked.connect(self.toggle_stream)
        self.devices.refresh_button.clicked.connect(self.refresh_devices)
        keys: dict[str, Callable[[], object]] = {
            "Ctrl+Return": self.toggle_stream,
            "Ctrl+Enter": self.toggle_stream,
            "Ctrl+B": self.transfer.bypass.toggle,
            "Ctrl+S": self.save_preset,
            "Ctrl+O": self.load_preset,
        }
        for i in range(SHORTCUT_STYLES):  # the chosen model's first nine styles (its buttons change with it)
            keys[f"Ctrl+{i + 1}"] = partial(self.styles.click_index, i)
        # Application-wide (one window): also works while a non-blocking message box is open, and
        # under the offscreen platform the tests use, where window-scoped shortcuts never fire.
        for sequence, action in keys.items():
            QShortcut(QKeySequence(sequence), self, context=Qt.ShortcutContext.ApplicationShortcut).activated.connect(
                action
            )
        self.styles.mixChanged.connect(self.set_mix)
        self.transfer.changed.connect(self.set_param)
        self.devices.model.currentIndexChanged.connect(self.apply_model_defaults)
        self.preset_bar.save.clicked.connect(self.save_preset)
        self.preset_bar.load.clicked.connect(self.load_preset)
        self.preset_bar.delete.clicked.connect(self.delete_preset)

    # ---- parameters ----------------------------------------------------------------------------------

    def apply_model_defaults(self, _index: int = -1) -> None:
        """A newly chosen model starts at its recommended steps/strength (e.g. 1 step for the CPU teacher),
        not at whatever suits another model; a bundle that cannot be read is reported when started."""
        from export.bundle import load_bundle

        path = self.devices.model.currentData()
        if not path or path == "passthrough":
            self.styles.set_styles(STYLE_NAMES)
            self.devices.follow_bundle_input(None)
            return
        try:
            bundle = load_bundle(path, verify_hashes=False)
        except StylehostError:
            self.devices.follow_bundle_input(None)
            return
        self.devices.follow_bundle_input(bundle.denoiser_input, fixed=bundle.denoiser_input == "both"
                                         or bundle.streaming is not None)
        self.styles.set_styles(bundle.styles)  # its own style list, which may hold names of its own
        defaults = bundle.defaults
        self.transfer.set_recommended(int(defaults["steps"]), float(defaults["strength"]))

    def set_param(self, name: str, value: object) -> None:
        """One control moved: a new snapshot for the engine (validated)."""
        try:
            self.controller.update(**{name: value})
        except StylehostError as exc:
            self.show_error("Invalid setting", str(exc))

    def set_mix(self, mix: tuple) -> None:
        self.set_param("style_mix", tuple(mix))
        self.transfer.show_mix(self.controller.params.style_mix)

    def show_params(self, params: EngineParams, pad: tuple[float, float] | None = None) -> None:
        self.styles.show_mix(params.style_mix, pad)
        self.transfer.show_params(params)

    # ---- streaming -----------------------------------------------------------------------------------

    def toggle_stream(self) -> None:
        if self.controller.running:
            self.stop_stream()
        else:
            self.start_stream()

    def start_stream(self) -> bool:
        try:
            session = self.controller.start(self.devices.settings())
        except StylehostError as exc:
            self.show_error("Cannot start audio", str(exc))
            return False
        engine = session.engine
        assert engine is not None  # controller.start() returns a started session, whose engine is set
        self.spec_in.set_sample_rate(engine.config.sample_rate)
        self.spec_out.set_sample_rate(engine.config.sample_rate)
        self._tap_buf = np.zeros(engine.input_tap.capacity, np.float32)
        engine.input_tap.read_new(self._tap_buf)  # start the spectrogram at "now"
        engine.output_tap.read_new(self._tap_buf)
        self.devices.set_running(True)
        self.styles.limit_to(self.controller.model_styles)
        mode = "PASSTHROUGH: DSP stand-in, no restyling" if self.controller.passthrough else "model bundle"
        self.readouts.mode.setText(mode)
        self.readouts.mode.setToolTip(PASSTHROUGH_NOTICE if self.controller.passthrough else "a model bundle runs")
        self.statusBar().showMessage(  # type: ignore[union-attr]
            f"{session.device_name}: {engine.config.sample_rate} Hz, block {engine.config.blocksize}, "
            f"latency {engine.latency.describe()}"
        )
        return True

    def stop_stream(self) -> None:
        try:
            self.controller.stop()
        except StylehostError as exc:
            self.show_error("Error stopping audio", str(exc))
        self.devices.set_running(False)
        self.styles.limit_to(None)
        self.readouts.mode.setText("stopped")
        self.readouts.show_status(None)
        self.statusBar().showMessage("Stopped.")  # type: ignore[union-attr]

    def poll(self) -> None:
        """Timer tick: read status and tap snapshots; never waits on the audio threads."""
        try:
            self.controller.check_alive()
        except StylehostError as exc:
            self.stop_stream()
            self.show_error("Audio stopped", str(exc))
            return
        self.readouts.show_status(self.controller.status())
        engine = self.controller.engine
        if engine is None:
            return
        for tap, view in ((engine.input_tap, self.spec_in), (engine.output_tap, self.spec_out)):
            n = tap.read_new(self._tap_buf)
            view.push(self._tap_buf[:n])

    def refresh_devices(self) -> None:
        try:
            devices = self.devices.refresh_devices()
        except StylehostError as exc:
            self.show_error("No audio devices", str(exc))
            return
        if not devices:
            self.statusBar().showMessage(  # type: ignore[union-attr]
                "PortAudio sees no audio devices: start JACK or PipeWire, or plug in an interface, then Refresh."
            )

    # ---- presets -------------------------------------------------------------------------------------

    def refresh_presets(self) -> None:
        self.preset_bar.set_names(self.presets.names())

    def save_preset(self) -> None:
        name = self.preset_bar.name.currentText().strip()
        try:
            path = self.presets.save(Preset(name, self.controller.params, self.styles.pad.position))
        except StylehostError as exc:
            self.show_error("Cannot save preset", str(exc))
            return
        self.refresh_presets()
        self.statusBar().showMessage(f"Saved preset {name!r} to {path}")  # type: ignore[union-attr]

    def load_preset(self) -> None:
        name = self.preset_bar.name.currentText().strip()
        try:
            preset = self.presets.load(name)
            self.controller.update(preset.params)
        except StylehostError as exc:
            self.show_error("Cannot load preset", str(exc))
            return
        self.show_params(preset.params, preset.pad)
        self.statusBar().showMessage(f"Loaded preset {name!r}")  # type: ignore[union-attr]

    def delete_preset(self) -> None:
        name = self.preset_bar.name.currentText().strip()
        try:
            self.presets.delete(name)
        except StylehostError as exc:
            self.show_error("Cannot delete preset", str(exc))
            return
        self.refresh_presets()
        self.preset_bar.name.setEditText("")
        self.statusBar().showMessage(f"Deleted preset {name!r}")  # type: ignore[union-attr]

    # ---- messages ------------------------------------------------------------------------------------

    def show_error(self, title: str, text: str) -> None:
        """A window-modal box that does not block the event loop (readouts keep running)."""
        self.statusBar().showMessage(f"{title}: {text}")  # type: ignore[union-attr]
        repeated = text == self.last_message and any(b.isVisible() for b in self.findChildren(QMessageBox))
        self.last_message = text
        if repeated:  # e.g. dragging the pad onto a style the model lacks: one box, not one per move
            return
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def closeEvent(self, event: object) -> None:  # noqa: N802 - Qt's name
        self.timer.stop()
        try:
            self.controller.stop()
        except StylehostError:
            pass  # closing anyway
        super().closeEvent(event)  # type: ignore[arg-type]


def add_gui_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", default=None, help="preset folder (default: the user config folder)")
    p.add_argument("--same-process", action="store_true",
                   help="run the audio engine in the panel's process (default: its own process, so the panel's "
                        "Python work can never delay the audio threads)")


def close_on_signals(window: QMainWindow, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
    """Ctrl-C and SIGTERM close the panel as its close button does (stream stopped, engine process ended).

    Why: Python's default SIGINT handler raises KeyboardInterrupt inside whichever Qt slot runs next
    (the poll timer), and PyQt6 aborts the process on an exception escaping a slot (SIGABRT, rc -6).
    The handler runs in the main thread between bytecodes (the 50 ms poll timer guarantees some run);
    it only schedules the close, so no slot is interrupted halfway.
    """

    def on_signal(signum: int, frame: object) -> None:
        QTimer.singleShot(0, window.close)

    for sig in signals:
        signal.signal(sig, on_signal)


def cli_gui(args: argparse.Namespace) -> int:
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        raise StylehostError("no display: run it in a desktop session (or set QT_QPA_PLATFORM=offscreen to test)")
    share_gil_with_audio()  # for the in-process case (--same-process); the engine process has its own GIL
    app = QApplication.instance() or QApplication(sys.argv[:1])
    controller = EngineController(separate_process=not args.same_process)
    window = PanelWindow(controller, presets=PresetStore(args.presets))
    close_on_signals(window)  # audit: panel-closes-on-signals
    window.show()
    print("stylehost: panel open (close the window or press Ctrl-C to quit)", flush=True)
    return int(app.exec())  # type: ignore[union-attr]
