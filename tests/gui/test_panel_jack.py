"""The panel streaming through a real JACK server (dummy driver): Start opens a duplex PortAudio
stream, a JACK client plays a tone into it, the meters, counters and spectrograms move, Stop closes
it; and a GUI thread that stalls does not stop the audio (it only reads snapshots)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

from benchmarks.jackserver import JackServer, LoopbackProbe
from gui.app import POLL_MS, PanelWindow, share_gil_with_audio

pytestmark = pytest.mark.jack


def choose_jack(window: PanelWindow) -> None:
    for combo in (window.devices.input, window.devices.output):
        index = next(i for i in range(combo.count()) if "JACK" in combo.itemText(i))
        combo.setCurrentIndex(index)


@contextmanager
def streaming_tone(jack_server: JackServer, window: PanelWindow, seconds: float,
                   target: str | None = None) -> Iterator[tuple[PanelWindow, LoopbackProbe]]:
    """Start the window's stream and play ``seconds`` of a -6 dBFS 440 Hz tone into it from a probe
    (``target``: a JACK client name pattern of the stream's ports, when it is not the default one);
    waits for the tone to end and stops the stream on exit."""
    assert window.start_stream(), window.last_message
    with LoopbackProbe(jack_server.name) as probe:
        if target is not None:
            probe.target = probe.client.get_ports(target)[0].name.split(":")[0]
        probe.connect()
        rate = probe.client.samplerate
        tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
        player = threading.Thread(target=probe.play_and_record, args=(tone,))
        player.start()
        try:
            yield window, probe
        finally:
            player.join()
            window.stop_stream()


@pytest.fixture
def playing(jack_server: JackServer, window: PanelWindow) -> Iterator[tuple[PanelWindow, LoopbackProbe]]:
    """The window streaming on the JACK server while a probe plays 3 s of a tone."""
    window.refresh_devices()  # the fixture pointed PortAudio at the JACK server after the window was built
    choose_jack(window)
    with streaming_tone(jack_server, window, 3.0) as playing:
        yield playing


def test_start_stop_streams_audio_and_readouts_update(playing: tuple[PanelWindow, LoopbackProbe], qtbot: Any) -> None:
    window, _ = playing
    engine = window.controller.engine
    assert engine is not None and window.devices.start_button.text() == "Stop"
    assert not window.devices.input.isEnabled()  # stream settings are fixed while streaming
    r = window.readouts
    qtbot.waitUntil(lambda: r.in_meter.level_db > -10 and r.out_meter.level_db > -10, timeout=4000)
    assert r.in_meter.level_db < -3  # a -6 dBFS tone, not a full-scale mistake
    qtbot.waitUntil(lambda: window.spec_in.columns_added > 20 and window.spec_out.columns_added > 20, timeout=4000)
    assert r.dropouts.text().isdigit() and r.xruns.text().isdigit()
    assert f"{engine.latency.total_ms:.1f} ms" in r.latency.text()
    assert "PASSTHROUGH" in r.mode.text()
    blocks = engine.blocks
    qtbot.wait(200)
    assert engine.blocks > blocks  # the callback keeps running
    window.stop_stream()
    assert window.controller.session is None and window.devices.start_button.text() == "Start"
    assert r.latency.text() == "-" and window.devices.input.isEnabled()


def test_the_panel_poll_is_cheap(playing: tuple[PanelWindow, LoopbackProbe], qtbot: Any) -> None:
    window, _ = playing
    qtbot.wait(300)
    times = []
    for _ in range(20):
        t0 = time.thread_time()  # CPU time of the GUI thread: wall time on a loaded CI box says little
        window.poll()
        window.repaint()  # the poll's repaints, done now rather than by the event loop
        times.append(time.thread_time() - t0)
        qtbot.wait(POLL_MS)
    # A small share of the 50 ms poll period: ~3 ms measured on a quiet machine, 8-12 ms on a loaded one
    # (the same for the code before and after issue 19), so the bar is 40% of the period, not 20%.
    assert np.median(times) < 0.02, times


def audio_during(engine: Any, busy: bool, seconds: float = 0.5) -> tuple[float, int]:
    """(callbacks per expected block, new dropouts) while the GUI thread idles or spins in Python."""
    blocks, dropouts = engine.blocks, engine.dropouts
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if busy:
            sum(range(1000))  # holds the GIL between switch intervals, like a long Python repaint
        else:
            time.sleep(0.01)
    expected = (time.monotonic() - t0) * engine.config.sample_rate / engine.config.blocksize
    return (engine.blocks - blocks) / expected, engine.dropouts - dropouts


def test_a_stalled_gui_thread_does_not_stop_the_audio(playing: tuple[PanelWindow, LoopbackProbe], qtbot: Any) -> None:
    """The event loop blocked (no polls, no repaints) for 0.5 s, then the GUI thread spinning in
    Python for 0.5 s, each against an idle-GUI baseline measured just before (machine load cancels).

    Blocked: the audio must not notice at all, it never waits on the panel. Spinning: the GUI thread
    competes for the GIL and, on a loaded machine, for CPU; `share_gil_with_audio` keeps hand-overs
    at 0.5 ms (at CPython's default 5 ms this lost ~40 of 94 blocks), and the callbacks keep coming.
    """
    window, _ = playing
    engine = window.controller.engine
    assert engine is not None
    old = sys.getswitchinterval()
    share_gil_with_audio()  # what `stylehost gui` does at start-up
    try:
        qtbot.wait(300)
        written = engine.output_tap.written
        idle_rate, idle_drops = audio_during(engine, busy=False)  # the event loop is blocked here too
        busy_rate, _ = audio_during(engine, busy=True)
    finally:
        sys.setswitchinterval(old)
    assert idle_rate > 0.9 and idle_drops <= 5, (idle_rate, idle_drops)
    assert busy_rate > 0.3 * idle_rate, (busy_rate, idle_rate)
    assert engine.output_tap.written > written  # and the worker kept producing
    window.poll()  # the late poll reads a fresh snapshot; the tap skipped what the panel missed
    assert window.readouts.dropouts.text().isdigit()
