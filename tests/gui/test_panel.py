"""The panel without audio devices: it builds at 1280x720 with tooltips everywhere, and every
control changes the engine's parameter snapshot (which the worker then hands to the processor)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PyQt6.QtCore import QPoint, Qt
from PyQt6.QtWidgets import QAbstractButton, QAbstractSlider, QComboBox, QScrollBar, QWidget

from diffusion.styles import STYLE_NAMES
from gui.app import PanelWindow
from gui.widgets.meters import LevelMeter
from gui.widgets.mixpad import MixPad, anchors, pad_weights
from gui.widgets.spectrogram import ROWS, RollingSpectrogram, SpectrogramView
from tests.gui.conftest import OfflineSession, RecordingProcessor


def received(session: OfflineSession) -> list[dict[str, Any]]:
    """What the worker handed the processor's set_params, oldest first."""
    proc = session.engine.processors[0]
    assert isinstance(proc, RecordingProcessor)
    return proc.received


def weights(mix: tuple[tuple[str, float], ...]) -> dict[str, float]:
    total = sum(w for _, w in mix)
    return {k: w / total for k, w in mix}


def test_window_fits_1280x720_and_every_control_has_a_tooltip(window: PanelWindow) -> None:
    hint = window.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 720, hint
    assert window.size().width() == 1280 and window.size().height() == 720
    controls = [
        w
        for w in window.findChildren(QWidget)
        if isinstance(w, QAbstractButton | QComboBox | QAbstractSlider | MixPad | LevelMeter | SpectrogramView)
        and w.parent() is not None
        and not isinstance(w, QScrollBar)  # inside combo popups and scroll areas
    ]
    assert len(controls) > 25
    missing = [f"{type(w).__name__} {getattr(w, 'text', lambda: '')()}" for w in controls if not w.toolTip()]
    assert not missing, missing
    assert len(window.styles.buttons) == len(STYLE_NAMES) == 8


def test_style_button_changes_engine_params_and_reaches_the_processor(
    window: PanelWindow, offline: OfflineSession, qtbot: Any
) -> None:
    qtbot.mouseClick(window.styles.buttons["cello"], Qt.MouseButton.LeftButton)
    assert offline.engine.params.style_mix == (("cello", 1.0),)
    assert window.styles.buttons["cello"].isChecked() and not window.styles.buttons["violin"].isChecked()
    offline.engine.pump()  # the worker applies the snapshot between processor calls
    assert received(offline)[-1]["style_mix"] == {"cello": 1.0}


def test_keyboard_shortcuts_select_a_style_and_bypass(window: PanelWindow, offline: OfflineSession, qtbot: Any) -> None:
    window.activateWindow()
    qtbot.waitActive(window)
    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert offline.engine.params.style_mix == ((STYLE_NAMES[2], 1.0),)
    qtbot.keyClick(window, Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier)
    assert offline.engine.params.bypass


def test_dragging_the_mix_pad_blends_styles_live(window: PanelWindow, offline: OfflineSession, qtbot: Any) -> None:
    pad = window.styles.pad
    a, b = anchors()["piano"], anchors()["organ"]
    start = pad.to_widget(*a).toPoint()
    middle = pad.to_widget((a[0] + b[0]) / 2, (a[1] + b[1]) / 2).toPoint()
    qtbot.mousePress(pad, Qt.MouseButton.LeftButton, pos=start)
    assert weights(offline.engine.params.style_mix) == {"piano": 1.0}
    qtbot.mouseMove(pad, pos=middle)
    # A real drag sends move events with the button held; offscreen qtbot.mouseMove may not carry it.
    pad.mouseMoveEvent(_move_event(middle))
    w = weights(offline.engine.params.style_mix)
    assert w["piano"] == pytest.approx(w["organ"], abs=0.06) and w["piano"] > 0.3  # pixel rounding
    assert window.transfer.mix_label.text().startswith(("piano", "organ"))
    offline.engine.pump()
    assert set(received(offline)[-1]["style_mix"]) >= {"piano", "organ"}
    pad.setFocus()
    before = offline.engine.params.style_mix
    qtbot.keyClick(pad, Qt.Key.Key_Down)
    assert offline.engine.params.style_mix != before
    qtbot.keyClick(pad, Qt.Key.Key_Home)  # centre: every style equally
    assert all(v == pytest.approx(1 / 8) for v in weights(offline.engine.params.style_mix).values())


def _move_event(pos: QPoint) -> Any:
    from PyQt6.QtCore import QPointF
    from PyQt6.QtGui import QMouseEvent

    return QMouseEvent(
        QMouseEvent.Type.MouseMove,
        QPointF(pos),
        QPointF(pos),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )


def test_transfer_controls_change_engine_params(window: PanelWindow, offline: OfflineSession, qtbot: Any) -> None:
    t = window.transfer
    t.strength.setValue(35)
    qtbot.mouseClick(t.steps[2], Qt.MouseButton.LeftButton)
    t.wet.setFocus()
    qtbot.keyClick(t.wet, Qt.Key.Key_PageDown)  # keyboard: one page (10%) drier
    t.gain.setValue(-12)
    t.bypass.setFocus()
    qtbot.keyClick(t.bypass, Qt.Key.Key_Space)
    p = offline.engine.params
    assert (p.strength, p.steps, p.wet, p.input_gain_db, p.bypass) == (0.35, 2, 0.9, -12.0, True)
    offline.engine.pump()
    assert received(offline)[-1] == {"style_mix": {"violin": 1.0}, "strength": 0.35, "steps": 2}


def test_pad_weights_pure_on_anchors_equal_in_centre_and_continuous() -> None:
    for name, (x, y) in anchors().items():
        assert pad_weights(x, y) == ((name, 1.0),)
    centre = dict(pad_weights(0.0, 0.0))
    assert len(centre) == 8 and all(w == pytest.approx(0.125) for w in centre.values())
    a = dict(pad_weights(0.3, 0.3))
    b = dict(pad_weights(0.301, 0.3))
    assert all(abs(a.get(k, 0) - b.get(k, 0)) < 0.01 for k in set(a) | set(b))
    assert sum(a.values()) == pytest.approx(1.0)


def test_readouts_follow_engine_status(window: PanelWindow, offline: OfflineSession) -> None:
    engine = offline.engine
    x = (0.5 * np.sin(np.arange(256 * 40) / 10)).astype(np.float32)[:, None]
    y = np.zeros_like(x)
    for i in range(0, len(x), 256):
        engine.process_block(x[i : i + 256], y[i : i + 256])
        engine.pump()
    for _ in range(20):  # the worker stops: the callback drains the primed output, then drops out
        engine.process_block(np.zeros((256, 1), np.float32), np.zeros((256, 1), np.float32), True)
    window.spec_in.set_sample_rate(24000)
    window._tap_buf = np.zeros(engine.input_tap.capacity, np.float32)
    window.poll()
    r = window.readouts
    assert r.in_meter.level_db == pytest.approx(-6.0, abs=0.5)
    assert int(r.dropouts.text()) == engine.dropouts > 0 and r.xruns.text() == "20"
    assert "ms" in r.latency.text() and r.load.text().endswith("%")
    assert window.spec_in.columns_added > 0


def test_rolling_spectrogram_finds_a_sine() -> None:
    spec = RollingSpectrogram(48000)
    t = np.arange(48000) / 48000
    cols = np.concatenate([spec.push(chunk) for chunk in np.split(np.sin(2 * np.pi * 1000 * t), 10)], axis=1)
    assert cols.shape == (ROWS, (48000 - 1024) // 512 + 1)  # chunking loses no columns
    row = int(np.argmax(cols[:, 10]))
    assert 0.22 * ROWS < row < 0.33 * ROWS and cols[row, 10] == 255  # mel(1 kHz) is 27% up; full scale is hot


def test_dead_stream_is_stopped_with_a_message(window: PanelWindow, offline: OfflineSession) -> None:
    offline.active = False  # the device vanished under the stream
    window.poll()
    assert window.controller.session is None and "stopped" in window.last_message
    assert window.devices.start_button.text() == "Start"


def test_the_source_choice_reaches_the_stream_settings(window: PanelWindow) -> None:
    """"Hears: pitch only" asks the session for the excitation (and the stage shaping it); each choice has a tip."""
    hears = window.devices.hears
    assert window.devices.settings().denoiser_input == "bundle" and not window.devices.settings().harmonic
    hears.setCurrentIndex(hears.findData("excitation"))
    settings = window.devices.settings()
    assert settings.denoiser_input == "excitation" and settings.harmonic
    assert all(hears.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(hears.count()))
    window.devices.set_running(True)
    assert not hears.isEnabled()  # fixed while a stream runs, as the model is
    window.devices.set_running(False)
