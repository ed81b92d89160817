"""Missing devices, models and broken presets end in a message box or status line, not a traceback."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from PyQt6.QtWidgets import QMessageBox

import gui.devicebar
from diffusion.errors import StylehostError
from gui.app import PanelWindow, cli_gui
from gui.presets import Preset, PresetStore, default_presets_dir
from realtime.params import EngineParams


def message_boxes(window: PanelWindow) -> list[QMessageBox]:
    return [b for b in window.findChildren(QMessageBox) if b.isVisible()]


def test_missing_model_bundle_shows_a_message(window: PanelWindow, tmp_path: Path) -> None:
    window.devices.add_bundle(str(tmp_path / "no-such-bundle"))
    assert not window.start_stream()
    assert "no-such-bundle" in window.last_message
    assert message_boxes(window) and window.controller.session is None
    assert window.devices.start_button.text() == "Start"


def test_missing_device_shows_a_message(window: PanelWindow) -> None:
    window.devices.input.addItem("unplugged interface", 999)
    window.devices.input.setCurrentIndex(window.devices.input.count() - 1)
    assert not window.start_stream()
    assert message_boxes(window) and window.controller.session is None
    assert "999" in window.last_message or "no audio input device" in window.last_message


def test_no_devices_or_portaudio_failure_is_a_message(window: PanelWindow, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gui.devicebar, "list_devices", lambda: [])
    window.refresh_devices()
    assert "no audio devices" in window.statusBar().currentMessage()  # type: ignore[union-attr]
    assert window.devices.input.count() == 1  # only "default"

    def fail() -> list:
        raise StylehostError("PortAudio cannot list devices: boom")

    monkeypatch.setattr(gui.devicebar, "list_devices", fail)
    window.refresh_devices()
    assert "boom" in window.last_message and message_boxes(window)


def test_preset_round_trip_through_the_panel(window: PanelWindow, tmp_path: Path, qtbot: Any) -> None:
    window.styles.pad.set_position(0.2, 0.5)
    window.transfer.strength.setValue(40)
    window.preset_bar.name.setEditText("verse")
    window.save_preset()
    saved = json.loads((tmp_path / "presets" / "verse.json").read_text())
    assert saved["params"]["strength"] == 0.4 and saved["pad"] == [0.2, 0.5]
    window.styles.buttons["flute"].click()
    window.transfer.strength.setValue(90)
    window.load_preset()
    assert window.controller.params.strength == 0.4 and window.transfer.strength.value() == 40
    assert window.styles.pad.position == (0.2, 0.5)
    assert window.controller.params.style_mix == saved_mix(saved)
    assert window.preset_bar.name.findText("verse") >= 0


def saved_mix(saved: dict) -> tuple:
    return tuple((k, v) for k, v in saved["params"]["style_mix"].items())


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ('{"params": {"strength": 0.5, "colour": "red"}}', "unknown keys ['colour']; valid keys"),
        ('{"params": {"strength": 3}}', "strength must be in [0, 1]"),
        ('{"params": {"style_mix": {"kazoo": 1}}}', "valid styles"),
        ('{"params": {"steps": 3}}', "steps must be one of"),
        ('{"params": {}, "extra": 1}', "unknown keys ['extra']"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_preset_files_give_a_message(window: PanelWindow, tmp_path: Path, content: str, expected: str) -> None:
    folder = tmp_path / "presets"
    folder.mkdir(exist_ok=True)
    (folder / "bad.json").write_text(content)
    before = window.controller.params
    window.preset_bar.name.setEditText("bad")
    window.load_preset()
    assert expected in window.last_message and message_boxes(window)
    assert window.controller.params is before  # nothing half-applied


def test_preset_store_defaults_to_the_user_config_folder(tmp_path: Path) -> None:
    assert default_presets_dir().parts[-2:] == ("stylehost", "presets")
    store = PresetStore(tmp_path)
    params = EngineParams(style_mix=(("violin", 0.25), ("cello", 0.75)), steps=1, bypass=True)
    store.save(Preset("duo", params))
    assert store.names() == ["duo"] and store.load("duo").params == params
    with pytest.raises(StylehostError, match="preset name"):
        store.save(Preset("../escape", params))
    with pytest.raises(StylehostError, match="cannot read preset"):
        store.load("missing")


def test_gui_command_without_a_display_is_an_error_not_a_qt_abort(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    with pytest.raises(StylehostError, match="no display"):  # main() prints it on one line, exit 2
        cli_gui(argparse.Namespace(presets=None))
