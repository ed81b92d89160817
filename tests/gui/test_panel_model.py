"""The panel with a real (tiny, untrained) model bundle: listed by discovery, loaded through
realtime.session.open_session on Start, streamed through JACK; a style the bundle lacks is refused with a message."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import export.bundle
from benchmarks.jackserver import JackServer, LoopbackProbe
from export.bundle import Bundle
from gui.app import PanelWindow
from gui.bundles import available_bundles
from realtime.processor import PassthroughProcessor
from realtime.session import Session
from tests.export.tiny import tiny_bundle
from tests.gui.conftest import OfflineSession
from tests.gui.test_panel_jack import choose_jack


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return tiny_bundle(tmp_path_factory.mktemp("models"))


@pytest.fixture
def models_dir(bundle: Bundle, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = bundle.path.parent
    monkeypatch.setattr(export.bundle, "search_dirs", lambda: [root])
    return root


def test_discovered_bundles_are_listed_after_the_passthrough(models_dir: Path, bundle: Bundle) -> None:
    choices = available_bundles()
    assert choices[0].path is None and any(c.label.startswith(bundle.name) and not c.problem for c in choices)
    mine = next(c for c in choices if c.path == str(bundle.path))
    assert f"({bundle.latency_ms:.0f} ms model latency)" in mine.label  # each bundle's latency, as `models` says


def test_a_streaming_bundle_is_labelled_with_its_latency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from export.streaming import export_streaming_bundle
    from tests.diffusion.test_guide_bundle import tiny_stage_file
    from tests.realtime.test_stream_processor import tiny_causal

    streaming = export_streaming_bundle(tiny_causal(tmp_path / "c.pt"), tmp_path / "models" / "s",
                                        tiny_stage_file(tmp_path / "g.pt"))
    monkeypatch.setattr(export.bundle, "search_dirs", lambda: [tmp_path / "models"])
    labels = [c.label for c in available_bundles()]
    assert f"({streaming.latency_ms:.0f} ms model latency, streaming)" in labels[1]


def test_a_bundle_summary_is_the_model_choice_tooltip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     window: PanelWindow) -> None:
    """The trade-off a bundle states (manifest model.summary, as `stylehost models` prints it) shows on hover."""
    from PyQt6.QtCore import Qt

    from tests.export.tiny import tiny_bundle

    b = tiny_bundle(tmp_path / "models", "low")
    export.bundle.update_manifest(b.path, {"model": {**b.manifest["model"], "summary": "12 ms sooner, +7% log-mel"}})
    monkeypatch.setattr(export.bundle, "search_dirs", lambda: [tmp_path / "models"])
    window.devices.refresh_bundles()
    tip = window.devices.model.itemData(1, Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith("12 ms sooner, +7% log-mel") and str(b.path) in tip


def test_a_streaming_bundle_offers_only_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             window: PanelWindow) -> None:
    """A streaming bundle hears what it was made for only: the other Hears choices are greyed out."""
    from export.streaming import export_streaming_bundle
    from tests.diffusion.test_guide_bundle import tiny_stage_file
    from tests.realtime.test_stream_processor import tiny_causal

    export_streaming_bundle(tiny_causal(tmp_path / "c.pt"), tmp_path / "models" / "s",
                            tiny_stage_file(tmp_path / "g.pt"))
    monkeypatch.setattr(export.bundle, "search_dirs", lambda: [tmp_path / "models"])
    hears = window.devices.hears
    hears.setCurrentIndex(hears.findData("excitation"))
    window.devices.refresh_bundles()
    window.devices.model.setCurrentIndex(1)
    enabled = {hears.itemData(i): hears.model().item(i).isEnabled() for i in range(hears.count())}
    assert enabled == {"bundle": True, "source": False, "excitation": False} and hears.currentData() == "bundle"


@pytest.mark.jack
def test_streaming_a_model_bundle(jack_server: JackServer, models_dir: Path, window: PanelWindow, qtbot: Any) -> None:
    window.devices.refresh_bundles()
    window.devices.model.setCurrentIndex(1)
    window.refresh_devices()
    choose_jack(window)
    assert window.start_stream(), window.last_message
    try:
        assert not window.controller.passthrough and "model" in window.readouts.mode.text()
        with LoopbackProbe(jack_server.name) as probe:
            probe.connect()
            rate = probe.client.samplerate
            tone = (0.3 * np.sin(2 * np.pi * 330 * np.arange(2 * rate) / rate)).astype(np.float32)
            player = threading.Thread(target=probe.play_and_record, args=(tone,))
            player.start()
            qtbot.waitUntil(lambda: window.readouts.in_meter.level_db > -20, timeout=4000)
            qtbot.waitUntil(lambda: window.spec_out.columns_added > 5, timeout=4000)
            player.join()
        assert window.readouts.load.text().endswith("%")
    finally:
        window.stop_stream()


def test_a_style_the_running_model_lacks_is_refused(window: PanelWindow, models_dir: Path) -> None:
    duo = type("B", (), {"name": "duo", "styles": ("violin", "cello")})()  # a bundle with two styles
    window.controller.session = OfflineSession()  # type: ignore[assignment]
    window.controller.opened = Session(PassthroughProcessor, duo)  # what open_session returns for it
    window.styles.limit_to(window.controller.model_styles)
    assert not window.styles.buttons["flute"].isEnabled() and window.styles.buttons["cello"].isEnabled()
    window.styles.pad.select_style("flute")
    assert "has no style 'flute'" in window.last_message
    assert window.controller.params.style_mix == (("violin", 1.0),)  # unchanged


def test_choosing_a_model_applies_its_recommended_steps_and_strength(
    bundle: Bundle, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, window: PanelWindow
) -> None:
    import shutil

    from export.bundle import update_manifest

    root = tmp_path_factory.mktemp("recommended")
    shutil.copytree(bundle.path, root / "tuned")
    update_manifest(root / "tuned", {"defaults": {"steps": 1, "strength": 0.6}})
    monkeypatch.setattr(export.bundle, "search_dirs", lambda: [root])
    window.transfer.steps[4].click()
    window.transfer.strength.setValue(90)
    window.devices.refresh_bundles()
    window.devices.model.setCurrentIndex(1)  # after the passthrough
    assert window.transfer.steps[1].isChecked() and window.transfer.strength.value() == 60
    assert window.controller.params.steps == 1 and window.controller.params.strength == pytest.approx(0.6)


def test_the_style_buttons_and_pad_follow_the_chosen_model(
    bundle: Bundle, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, window: PanelWindow,
    qtbot: Any,
) -> None:
    """A bundle with a style of its own gets a button and an anchor for it; Ctrl+N follows its order; the
    passthrough brings the built-in styles back."""
    import shutil

    from PyQt6.QtCore import Qt

    from diffusion.styles import STYLE_NAMES
    from tests.export.tiny import edit_manifest

    own = "theremin"
    root = tmp_path_factory.mktemp("own-styles")
    shutil.copytree(bundle.path, root / "own")
    edit_manifest(root / "own", lambda m: m["styles"].__setitem__(m["styles"].index("guitar"), own))
    monkeypatch.setattr(export.bundle, "search_dirs", lambda: [root])
    window.devices.refresh_bundles()
    window.devices.model.setCurrentIndex(1)  # after the passthrough
    styles = tuple(json_styles(root / "own"))
    assert tuple(window.styles.buttons) == styles and own in window.styles.buttons
    assert window.styles.pad.names == styles
    window.styles.buttons[own].click()
    assert window.controller.params.style_mix == ((own, 1.0),)
    assert window.styles.buttons[own].isChecked()
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.controller.params.style_mix == ((styles[0], 1.0),)
    window.styles.buttons[own].click()
    window.devices.model.setCurrentIndex(0)  # the passthrough: the built-in styles again
    assert tuple(window.styles.buttons) == STYLE_NAMES
    assert window.controller.params.style_mix == ((STYLE_NAMES[0], 1.0),)  # the puck left the gone style
    window.styles.pad.select_style(own)  # a name the pad no longer shows is ignored, not a crash
    assert window.controller.params.style_mix == ((STYLE_NAMES[0], 1.0),)


def json_styles(folder: Path) -> list[str]:
    import json

    return list(json.loads((folder / "manifest.json").read_text())["styles"])


def test_a_bundle_hearing_both_offers_only_auto(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, window: PanelWindow
) -> None:
    """A denoiser hearing both windows has no one-window mode: "instrument" and "pitch only" are greyed out
    (and a choice of one is put back to auto) rather than refused at Start; the passthrough offers all three."""
    from tests.diffusion.test_hears_both import both_bundle

    root = tmp_path_factory.mktemp("both")
    both_bundle(root)
    monkeypatch.setattr(export.bundle, "search_dirs", lambda: [root])
    hears = window.devices.hears
    hears.setCurrentIndex(hears.findData("excitation"))
    window.devices.refresh_bundles()
    window.devices.model.setCurrentIndex(1)  # after the passthrough
    enabled = {hears.itemData(i): hears.model().item(i).isEnabled() for i in range(hears.count())}
    assert enabled == {"bundle": True, "source": False, "excitation": False}
    assert hears.currentData() == "bundle" and window.devices.settings().denoiser_input == "bundle"
    assert "instrument and its pitch" in hears.itemData(0, 3)  # Qt.ItemDataRole.ToolTipRole
    window.devices.model.setCurrentIndex(0)
    assert all(hears.model().item(i).isEnabled() for i in range(hears.count()))
