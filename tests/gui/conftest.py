"""GUI tests run headless: Qt's offscreen platform, presets in a temporary folder, and a stand-in
session so the window drives a real Engine (fed by hand) without opening audio devices."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before pytest-qt creates the QApplication

import pytest  # noqa: E402

from gui.app import PanelWindow  # noqa: E402
from gui.controller import EngineController  # noqa: E402
from gui.presets import PresetStore  # noqa: E402
from realtime.engine import Engine, EngineConfig  # noqa: E402
from realtime.processor import PassthroughProcessor  # noqa: E402


class RecordingProcessor(PassthroughProcessor):
    """Remembers what the worker passed to set_params: proves params reach the model side."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[dict[str, Any]] = []

    def set_params(self, **params: Any) -> None:
        self.received.append(params)


class OfflineSession:
    """Quacks like LiveSession for the controller: a real Engine, no stream (tests pump it)."""

    def __init__(self) -> None:
        self.engine = Engine(RecordingProcessor, EngineConfig(sample_rate=24000, blocksize=256))
        self.active = True
        self.device_name = "offline test engine"
        self.failure: str | None = None

    def stop(self) -> None:
        self.active = False


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> Iterator[PanelWindow]:
    win = PanelWindow(EngineController(), PresetStore(tmp_path / "presets"))
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.close()


@pytest.fixture
def offline(window: PanelWindow) -> OfflineSession:
    """Attach an offline engine to the window's controller, as if streaming had started."""
    session = OfflineSession()
    window.controller.session = session  # type: ignore[assignment]
    return session
