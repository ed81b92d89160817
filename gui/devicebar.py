"""The panel's audio row: input/output devices (every host API PortAudio sees), rate, block, model.

Device lists come from realtime.audio.list_devices, the same list `stylehost devices` prints, so
virtual devices (JACK, PipeWire, BlackHole, VB-Cable) appear as soon as PortAudio sees them.
"""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QStandardItemModel
from PyQt6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from diffusion.errors import StylehostError
from gui.bundles import available_bundles
from gui.controller import StreamSettings
from realtime.audio import DeviceInfo, list_devices

RATES = (None, 44100, 48000, 96000)
BLOCKS = (64, 128, 256, 512, 1024)
DEFAULT_BLOCK = 256


class DeviceBar(QGroupBox):
    """Combo boxes for the stream settings plus the Start/Stop button (owned by the window)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Audio", parent)
        self.input = QComboBox()
        self.input.setToolTip("Input device: every device PortAudio sees, with its host API (JACK, ALSA, WASAPI...)")
        self.output = QComboBox()
        self.output.setToolTip("Output device; use a virtual device (JACK, BlackHole, VB-Cable) to feed OBS")
        for combo in (self.input, self.output):
            combo.setMinimumContentsLength(12)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Look for devices again (new virtual devices, a restarted JACK server)")
        self.rate = QComboBox()
        for r in RATES:
            self.rate.addItem("device" if r is None else f"{r / 1000:g} kHz", r)
        self.rate.setToolTip("Device sample rate; 'device' uses the output's own rate. Resampled to the model's")
        self.block = QComboBox()
        for b in BLOCKS:
            self.block.addItem(str(b), b)
        self.block.setCurrentIndex(BLOCKS.index(DEFAULT_BLOCK))
        self.block.setToolTip("Callback block in samples: smaller is lower latency, larger survives a busy machine")
        self.model = QComboBox()
        self.model.setMinimumContentsLength(16)
        self.model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model.setToolTip("Model bundle; 'passthrough' runs a DSP stand-in that does NOT restyle")
        self.browse = QPushButton("Open...")
        self.browse.setToolTip("Choose a model bundle folder that is not in the list")
        self.start_button = QPushButton("Start")
        self.hears = QComboBox()
        for text, value, tip in HEARS:
            self.hears.addItem(text, value)
            self.hears.setItemData(self.hears.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.hears.setToolTip("What the model listens to (docs/timbre.md)")
        self.hears.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.hears.setMinimumContentsLength(6)
        self.start_button.setToolTip("Start or stop streaming (Ctrl+Return)")
        self.start_button.setMinimumWidth(90)
        row = QHBoxLayout(self)
        for label, widget in (("In", self.input), ("Out", self.output)):
            row.addWidget(_buddy(label, widget))
            row.addWidget(widget, 3)
        row.addWidget(self.refresh_button)
        for label, widget in (("Rate", self.rate), ("Block", self.block), ("Model", self.model),
                              ("Hears", self.hears)):
            row.addWidget(_buddy(label, widget))
            row.addWidget(widget, 2 if widget is self.model else 0)
        row.addWidget(self.browse)
        row.addWidget(self.start_button)
        self.browse.clicked.connect(self._browse)
        self.refresh_bundles()

    def refresh_devices(self, devices: list[DeviceInfo] | None = None) -> list[DeviceInfo]:
        """Fill both device lists, keeping the current choices; StylehostError if PortAudio fails."""
        devices = list_devices() if devices is None else devices
        for combo, key in ((self.input, "max_input_channels"), (self.output, "max_output_channels")):
            keep = combo.currentData()
            combo.clear()
            combo.addItem("default", None)
            for d in devices:
                if getattr(d, key) > 0:
                    combo.addItem(f"{d.name} [{d.hostapi}]", d.index)
                    combo.setItemData(combo.count() - 1, d.line(), Qt.ItemDataRole.ToolTipRole)
            found = combo.findData(keep)
            combo.setCurrentIndex(max(found, 0))
        return devices

    def refresh_bundles(self) -> None:
        keep = self.model.currentData()
        self.model.clear()
        for choice in available_bundles():
            self.model.addItem(choice.label, choice.path)
            where = choice.path or "DSP stand-in: the output is the input, delayed"
            tip = choice.problem or (f"{choice.note}\n{where}" if choice.note else where)
            self.model.setItemData(self.model.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.model.setCurrentIndex(max(self.model.findData(keep), 0))

    def add_bundle(self, path: str) -> None:
        """Select ``path`` (added to the list if new); loading errors come when streaming starts."""
        if self.model.findData(path) < 0:
            self.model.addItem(path.rstrip("/").split("/")[-1] or path, path)
        self.model.setCurrentIndex(self.model.findData(path))

    def follow_bundle_input(self, heard: str | None, fixed: bool | None = None) -> None:
        """Offer only the choices the chosen bundle can honour: a bundle whose denoiser hears both the input
        and its excitation (manifest ``denoiser_input`` both) has no one-window mode, and a streaming bundle
        hears what it was made for only (``fixed``), so "auto" is all they get instead of a refusal at Start.
        ``heard`` None (passthrough, unreadable bundle): every choice."""
        fixed = heard == "both" if fixed is None else fixed
        items = self.hears.model()
        assert isinstance(items, QStandardItemModel)  # a QComboBox's own model
        for i in range(self.hears.count()):
            value = self.hears.itemData(i)
            allowed = not fixed or value == "bundle"
            item = items.item(i)
            if item is not None:
                item.setEnabled(allowed)
            if value == "bundle":
                tip = HEARS[0][2] if heard is None else f"what the model bundle was made for: {HEARD[heard]}"
                self.hears.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
        if fixed and self.hears.currentData() != "bundle":
            self.hears.setCurrentIndex(self.hears.findData("bundle"))

    def settings(self) -> StreamSettings:
        block = self.block.currentData()
        if block is None:
            raise StylehostError("choose a block size")
        return StreamSettings(
            input=self.input.currentData(),
            output=self.output.currentData(),
            samplerate=self.rate.currentData(),
            blocksize=int(block),
            model=self.model.currentData(),
            denoiser_input=self.hears.currentData(),
        )

    def set_running(self, running: bool) -> None:
        """Lock the stream settings while streaming (they are fixed for an engine's life)."""
        self.start_button.setText("Stop" if running else "Start")
        for w in (self.input, self.output, self.refresh_button, self.rate, self.block, self.model, self.hears,
                  self.browse):
            w.setEnabled(not running)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Model bundle folder")
        if path:
            self.add_bundle(path)


# (label, StreamSettings.denoiser_input, tooltip): the choice a performer makes about their source
HEARS = (
    ("auto", "bundle", "what the model bundle was made for"),
    ("instrument", "source", "the model hears your instrument itself: best for guitars, pianos, strings"),
    ("pitch only", "excitation", "the model hears only your pitch and loudness, as a harmonic series: best for "
                                 "whistles, voices, sines and synths (docs/timbre.md)"),
)

# manifest denoiser_input -> what "auto" means with that bundle, for its tooltip
HEARD = {
    "source": "your instrument itself",
    "excitation": "only your pitch and loudness, as a harmonic series",
    "both": "your instrument and its pitch together (no one-window mode)",
    "gated": "your instrument, your pitch and loudness alone, or a blend, whichever the model renders better "
             "(judged call by call; it glides between them by itself)",
}


def _buddy(text: str, widget: QWidget) -> QLabel:
    label = QLabel(f"&{text}")
    label.setBuddy(widget)  # Alt+letter focuses the control
    return label
