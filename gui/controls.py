"""The panel's control groups: style chooser with mix pad, transfer controls, readouts, presets.

Each group shows an EngineParams (``show``, signals blocked so showing never echoes back) and emits
plain changes; the window turns them into engine snapshots. None of them talks to the engine.
"""

from __future__ import annotations

from functools import partial

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from diffusion.styles import STYLE_NAMES
from gui.presets import STEP_CHOICES
from gui.widgets.meters import LevelMeter
from gui.widgets.mixpad import MixPad
from realtime.params import EngineParams, EngineStatus

SHORTCUT_STYLES = 9  # Ctrl+1..9 pick the first nine styles of the chosen model


class StylePanel(QGroupBox):
    """One button per style of the chosen model (Ctrl+1..9) above the mix pad; both set the style mix.
    The built-in styles until a model is chosen, and for the passthrough (it ignores styles)."""

    mixChanged = pyqtSignal(tuple)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Style", parent)
        self.pad = MixPad()
        self.buttons: dict[str, QPushButton] = {}
        self._grid = QGridLayout()
        self._grid.setSpacing(4)
        self._add_buttons(STYLE_NAMES)
        layout = QVBoxLayout(self)
        layout.addLayout(self._grid)
        layout.addWidget(self.pad, 1)
        self.pad.mixChanged.connect(self._on_pad)
        self._mark(self.pad.mix)

    def _add_buttons(self, names: tuple[str, ...]) -> None:
        for i, name in enumerate(names):
            button = QPushButton(name)
            button.setCheckable(True)
            key = f" (Ctrl+{i + 1})" if i < SHORTCUT_STYLES else ""
            button.setToolTip(f"{name} alone{key}; drag the pad below to blend styles")
            button.clicked.connect(partial(self._on_button, name))
            self._grid.addWidget(button, i // 4, i % 4)
            self.buttons[name] = button

    def set_styles(self, names: tuple[str, ...]) -> None:
        """Show the chosen model's styles, in its manifest's order (a bundle may have styles of its own)."""
        if not names or tuple(self.buttons) == tuple(names):
            return
        for button in self.buttons.values():
            self._grid.removeWidget(button)
            button.deleteLater()
        self.buttons = {}
        self._add_buttons(tuple(names))
        self.pad.set_styles(tuple(names))  # emits the new mix when the puck had to move
        self._mark(self.pad.mix)

    def click_index(self, index: int) -> None:
        """Ctrl+N: the N-th style's button, if the model has that many."""
        buttons = list(self.buttons.values())
        if index < len(buttons) and buttons[index].isEnabled():
            buttons[index].click()

    def limit_to(self, styles: tuple[str, ...] | None) -> None:
        """Grey out styles the running model lacks (None: every style available)."""
        for name, button in self.buttons.items():
            button.setEnabled(styles is None or name in styles)

    def _on_button(self, name: str, checked: bool = False) -> None:
        self.pad.select_style(name)

    def _on_pad(self, mix: tuple) -> None:
        self._mark(mix)
        self.mixChanged.emit(mix)

    def _mark(self, mix: tuple) -> None:
        """Check the button of a pure style, none for a blend."""
        pure = mix[0][0] if len(mix) == 1 else None
        for name, button in self.buttons.items():
            button.setChecked(name == pure)

    def show_mix(self, mix: tuple[tuple[str, float], ...], pad: tuple[float, float] | None) -> None:
        """Show a mix from a preset; without a pad position, put the puck on the heaviest style."""
        if pad is not None:
            self.pad.set_position(*pad, emit=False)
        else:
            self.pad.select_style(max(mix, key=lambda kw: kw[1])[0], emit=False)
        self._mark(mix if len(mix) > 1 else ((mix[0][0], 1.0),))


class TransferPanel(QGroupBox):
    """Strength, steps, wet/dry, input gain and bypass; emits ``changed(name, value)``."""

    changed = pyqtSignal(str, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Transfer", parent)
        form = QFormLayout(self)
        self.strength, strength_row = _slider(0, 100, 70, "%", "Transfer strength: 0 keeps the input, 100 restyles")
        self.wet, wet_row = _slider(0, 100, 100, "%", "Wet/dry mix: 0 is the dry input (at the same latency)")
        self.gain, gain_row = _slider(-60, 24, 0, " dB", "Input gain before the model, -60 to +24 dB")
        self.steps: dict[int, QPushButton] = {}
        steps_row = QHBoxLayout()
        self._steps_group = QButtonGroup(self)
        self._steps_group.setExclusive(True)
        for n in STEP_CHOICES:
            button = QPushButton(str(n))
            button.setCheckable(True)
            button.setMinimumWidth(44)
            button.setToolTip(
                f"{n} diffusion sampling step{'s' if n > 1 else ''}: more steps, better quality, more load"
            )
            self._steps_group.addButton(button, n)
            steps_row.addWidget(button)
            self.steps[n] = button
        steps_row.addStretch(1)
        self.steps[4].setChecked(True)
        self.bypass = QCheckBox("Bypass (Ctrl+B)")
        self.bypass.setToolTip("Bypass: the dry input at the same latency, so toggling never jumps in time")
        form.addRow("Strength", strength_row)
        form.addRow("Steps", steps_row)
        form.addRow("Wet/dry", wet_row)
        form.addRow("Input gain", gain_row)
        self.match_level = QCheckBox("Match input level")
        self.match_level.setChecked(True)
        self.match_level.setToolTip("The restyled sound follows your playing level over about a second "
                                    "(off: the model's own loudness)")
        form.addRow("", self.bypass)
        form.addRow("", self.match_level)
        self.mix_label = QLabel()
        self.mix_label.setWordWrap(True)
        self.mix_label.setToolTip("The style weights the model receives (from the buttons, the pad or a preset)")
        form.addRow("Mix", self.mix_label)
        self.strength.valueChanged.connect(self._on_strength)
        self.wet.valueChanged.connect(self._on_wet)
        self.gain.valueChanged.connect(self._on_gain)
        self._steps_group.idClicked.connect(self._on_steps)
        self.bypass.toggled.connect(self._on_bypass)
        self.match_level.toggled.connect(self._on_match_level)

    def set_recommended(self, steps: int, strength: float) -> None:
        """Show a model's recommended steps and strength, and tell the engine (as if the user chose them)."""
        button = self.steps.get(steps)
        if button is not None and not button.isChecked():
            button.click()
        self.strength.setValue(int(round(strength * 100)))

    # Named slots rather than lambdas: PyQt matches a slot's arity to the signal's overloads.
    def _on_strength(self, value: int) -> None:
        self.changed.emit("strength", value / 100)

    def _on_wet(self, value: int) -> None:
        self.changed.emit("wet", value / 100)

    def _on_gain(self, value: int) -> None:
        self.changed.emit("input_gain_db", float(value))

    def _on_steps(self, steps: int) -> None:
        self.changed.emit("steps", steps)

    def _on_bypass(self, on: bool) -> None:
        self.changed.emit("bypass", on)

    def _on_match_level(self, on: bool) -> None:
        self.changed.emit("match_level", on)

    def show_mix(self, mix: tuple[tuple[str, float], ...]) -> None:
        total = sum(w for _, w in mix)
        self.mix_label.setText(", ".join(f"{name} {100 * w / total:.0f}%" for name, w in mix))

    def show_params(self, params: EngineParams) -> None:
        self.show_mix(params.style_mix)
        for widget, value in (
            (self.strength, round(params.strength * 100)),
            (self.wet, round(params.wet * 100)),
            (self.gain, round(params.input_gain_db)),
        ):
            widget.blockSignals(True)
            widget.setValue(value)
            widget.blockSignals(False)
            _sync_label(widget)
        if params.steps in self.steps:
            self.steps[params.steps].setChecked(True)
        for box, on in ((self.bypass, params.bypass), (self.match_level, params.match_level)):
            box.blockSignals(True)
            box.setChecked(on)
            box.blockSignals(False)


class ReadoutPanel(QGroupBox):
    """Level meters and the engine's numbers: latency, load, dropouts, xruns."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Engine", parent)
        self.in_meter = LevelMeter("IN")
        self.out_meter = LevelMeter("OUT")
        self.latency = _readout("Fixed end-to-end latency: engine (model, resampling, block, margin) + device buffers")
        self.load = _readout("Processing load: model compute time as a share of the real-time budget (100% = too slow)")
        self.dropouts = _readout("Dropouts: callbacks that found no processed audio ready (raise the block size)")
        self.xruns = _readout("Xruns: callbacks where the audio driver reported an over/underrun")
        self.overruns = _readout("Input samples dropped (input buffer full) / skipped by a worker catching up")
        self.mode = QLabel("stopped")
        self.mode.setToolTip("What is running: a model bundle, or the DSP passthrough (which does not restyle)")
        self.mode.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow(self.in_meter)
        form.addRow(self.out_meter)
        form.addRow("Latency", self.latency)
        form.addRow("Load", self.load)
        form.addRow("Dropouts", self.dropouts)
        form.addRow("Xruns", self.xruns)
        form.addRow("Lost input", self.overruns)
        form.addRow(self.mode)
        self.show_status(None)

    def show_status(self, status: EngineStatus | None) -> None:
        if status is None:
            self.in_meter.set_peak(0.0)
            self.out_meter.set_peak(0.0)
            for label in (self.latency, self.load, self.dropouts, self.xruns, self.overruns):
                label.setText("-")
            return
        self.in_meter.set_peak(status.input_peak)
        self.out_meter.set_peak(status.output_peak)
        self.latency.setText(f"{status.latency_ms:.1f} ms  (engine {status.algorithmic_latency_ms:.1f})")
        self.load.setText(f"{status.load * 100:.1f} %" + (f"  {status.overload}" if status.overload else ""))
        self.load.setStyleSheet("color: #e05545;" if status.load > 0.8 or status.overload else "")
        self.dropouts.setText(str(status.dropouts))
        self.xruns.setText(str(status.xruns))
        self.overruns.setText(f"{status.overruns} / {status.skipped} samples")


class PresetBar(QGroupBox):
    """Preset name (editable combo) with Save (Ctrl+S), Load (Ctrl+O) and Delete."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Presets", parent)
        self.name = QComboBox()
        self.name.setEditable(True)
        self.name.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.name.setToolTip("Preset name: pick a saved one or type a new name")
        self.name.lineEdit().setPlaceholderText("preset name")  # type: ignore[union-attr]
        self.save = QPushButton("Save")
        self.save.setToolTip("Save the style mix and transfer settings under this name (Ctrl+S)")
        self.load = QPushButton("Load")
        self.load.setToolTip("Apply the named preset (Ctrl+O)")
        self.delete = QPushButton("Delete")
        self.delete.setToolTip("Delete the named preset file")
        row = QHBoxLayout(self)
        row.addWidget(self.name, 1)
        for b in (self.save, self.load, self.delete):
            row.addWidget(b)

    def set_names(self, names: list[str]) -> None:
        current = self.name.currentText()
        self.name.clear()
        self.name.addItems(names)
        self.name.setEditText(current)


def _slider(lo: int, hi: int, value: int, unit: str, tip: str) -> tuple[QSlider, QWidget]:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(lo, hi)
    slider.setValue(value)
    slider.setToolTip(tip + " (arrow keys / Page Up-Down when focused)")
    slider.setPageStep(10 if hi - lo >= 50 else 5)
    label = QLabel()
    label.setMinimumWidth(52)
    label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    slider.setProperty("unit", unit)
    slider.setProperty("value_label", label)
    slider.valueChanged.connect(partial(_sync_label, slider))
    _sync_label(slider)
    row = QWidget()
    box = QHBoxLayout(row)
    box.setContentsMargins(0, 0, 0, 0)
    box.addWidget(slider, 1)
    box.addWidget(label)
    return slider, row


def _sync_label(slider: QSlider, value: int | None = None) -> None:
    label = slider.property("value_label")
    if isinstance(label, QLabel):
        label.setText(
            f"{slider.value():+d}{slider.property('unit')}"
            if slider.minimum() < 0
            else f"{slider.value()}{slider.property('unit')}"
        )


def _readout(tip: str) -> QLabel:
    label = QLabel("-")
    label.setToolTip(tip)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setStyleSheet("font-weight: 600;")
    return label
