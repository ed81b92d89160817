"""The panel with the engine in its own process (what `stylehost gui` runs), on a real JACK server:
streaming, readouts and spectrograms through shared-memory taps, parameter changes, errors from the
child shown as messages, a killed engine process reported; and the point of it all: a GUI thread
spinning in Python at CPython's default switch interval costs the audio nothing."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.jackserver import JackServer, LoopbackProbe
from gui.app import PanelWindow
from gui.controller import EngineController
from gui.presets import PresetStore
from realtime.remote import RemoteEngine, RemoteSession
from tests.gui.test_panel_jack import audio_during, choose_jack, streaming_tone

pytestmark = pytest.mark.jack


@pytest.fixture
def remote_window(jack_server: JackServer, qtbot: Any, tmp_path: Path) -> Iterator[PanelWindow]:
    win = PanelWindow(EngineController(separate_process=True), PresetStore(tmp_path / "presets"))
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.refresh_devices()
    choose_jack(win)
    yield win
    win.close()


@pytest.fixture
def playing(jack_server: JackServer, remote_window: PanelWindow) -> Iterator[tuple[PanelWindow, LoopbackProbe]]:
    """The window streaming from its engine process while a probe plays 4 s of a tone. The child's
    PortAudio registers its own JACK client ("PortAudio-01" when the panel's PortAudio, which only lists
    devices, already holds "PortAudio"): the probe plays into the one with ports."""
    with streaming_tone(jack_server, remote_window, 4.0, target="PortAudio.*:in_") as playing:
        yield playing


def test_remote_engine_streams_and_the_readouts_update(playing: tuple[PanelWindow, LoopbackProbe], qtbot: Any) -> None:
    window, _ = playing
    session = window.controller.session
    assert isinstance(session, RemoteSession) and session._proc.pid != os.getpid()
    engine = window.controller.engine
    assert isinstance(engine, RemoteEngine)
    r = window.readouts
    qtbot.waitUntil(lambda: r.in_meter.level_db > -10 and r.out_meter.level_db > -10, timeout=5000)
    assert r.in_meter.level_db < -3  # the -6 dBFS tone, measured in the other process
    # The spectrograms read the child's taps through shared memory.
    qtbot.waitUntil(lambda: window.spec_in.columns_added > 20 and window.spec_out.columns_added > 20, timeout=5000)
    assert f"{engine.latency.total_ms:.1f} ms" in r.latency.text()
    blocks = engine.blocks
    qtbot.wait(200)
    assert engine.blocks > blocks
    window.transfer.wet.setValue(40)  # a control change crosses the pipe without an error
    assert window.controller.params.wet == pytest.approx(0.4) and engine.params.wet == pytest.approx(0.4)
    assert window.last_message == ""


def test_a_spinning_gui_thread_costs_the_remote_audio_nothing(remote_window: PanelWindow, qtbot: Any) -> None:
    """At CPython's default 5 ms switch interval, where the in-process panel lost ~40 of 94 blocks,
    a GUI thread spinning in pure Python for 1 s leaves the child's callbacks on time: its GIL is
    not ours. (CPU is still shared, so the comparison is against an idle baseline taken just before.)

    No probe plays here: a JACK-Client probe is a Python callback in THIS process, and JACK waits for
    every client each cycle, so our spinning thread would slow the whole graph through the probe."""
    window = remote_window
    assert window.start_stream(), window.last_message
    engine = window.controller.engine
    assert engine is not None
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        qtbot.wait(300)
        idle_rate, idle_drops = audio_during(engine, busy=False, seconds=1.0)
        busy_rate, busy_drops = audio_during(engine, busy=True, seconds=1.0)
    finally:
        sys.setswitchinterval(old)
    window.stop_stream()
    assert idle_rate > 0.9, idle_rate
    assert busy_rate > 0.9 * idle_rate, (busy_rate, idle_rate)
    assert busy_drops <= idle_drops + 1, (busy_drops, idle_drops)


def test_errors_in_the_engine_process_are_messages(remote_window: PanelWindow, tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    remote_window.devices.add_bundle(str(tmp_path / "broken"))
    assert not remote_window.start_stream()
    assert "manifest" in remote_window.last_message
    assert remote_window.controller.session is None and remote_window.devices.start_button.text() == "Start"


def test_a_killed_engine_process_is_reported(remote_window: PanelWindow, qtbot: Any) -> None:
    assert remote_window.start_stream(), remote_window.last_message
    session = remote_window.controller.session
    assert isinstance(session, RemoteSession)
    os.kill(session._proc.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: remote_window.controller.session is None, timeout=5000)  # the poll noticed
    assert "engine process" in remote_window.last_message or "stopped" in remote_window.last_message
    assert remote_window.devices.start_button.text() == "Start"
