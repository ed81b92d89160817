"""Real duplex PortAudio streams through a real JACK server (dummy driver), probed by a JACK client.

The probe plays Hann pulses into PortAudio's inputs and records PortAudio's output: a pulse played
at sample s must come back at s + engine.latency.total, the engine's own report (algorithmic part
plus the stream's reported device latency). Timing assertions are loose where the machine's load
matters (dropouts, levels) and exact only where the arithmetic is exact (arrival times).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from benchmarks.jackserver import JackServer, LoopbackProbe, ProbeProcess, find_arrivals
from diffusion.errors import StylehostError
from realtime.audio import LiveSession
from realtime.engine import Engine
from realtime.processor import Processor, SlowProcessor, StftPassthroughProcessor

pytestmark = pytest.mark.jack


def pulse_train(rate: int, seconds: float, period_s: float = 0.2) -> tuple[np.ndarray, np.ndarray, list[int]]:
    pulse = (0.5 * np.hanning(34)[1:-1]).astype(np.float32)
    period = int(period_s * rate)
    starts = list(range(period // 4, int(seconds * rate) - period, period))
    signal = np.zeros(int(seconds * rate), np.float32)
    for s in starts:
        signal[s : s + len(pulse)] = pulse
    return signal, pulse, starts


def stream_pulses(
    server: JackServer, make: type[Processor] | object, seconds: float, channels: int = 1, during=None,
    callback_process: bool = False, spin_ms: float = 0.0,
) -> tuple[Engine, np.ndarray, list[float], list[int]]:
    """Open a live session on the server, play a pulse train, return the arrival delay of each pulse.
    ``callback_process``: the PortAudio callback in its own process (realtime/device_process.py)."""
    with LiveSession(make, input="system", output="system", blocksize=256, channels=channels,
                     callback_process=callback_process, spin_ms=spin_ms) as live:
        with LoopbackProbe(server.name) as probe:
            probe.connect()
            rate = probe.client.samplerate
            signal, pulse, starts = pulse_train(rate, seconds)
            worker = threading.Thread(target=during, args=(live.engine,)) if during else None
            if worker:
                worker.start()
            recorded = probe.play_and_record(signal)
            if worker:
                worker.join()
        period = starts[1] - starts[0]
        delays = [find_arrivals(recorded, pulse, s + period // 2, period // 2) - s for s in starts]
        peaks = [float(np.abs(recorded[s : s + period]).max()) for s in starts]
        return live.engine, np.array(peaks), delays, starts


def assert_mostly_exact(delays: list[float], reported: float, tol: float = 0.5) -> None:
    """Every pulse the engine delivered is exactly on time; a dropout (a loaded CI machine starving
    the worker) may damage a pulse but must never move the latency, so allow a few damaged ones."""
    exact = np.abs(np.asarray(delays) - reported) < tol
    assert exact.mean() >= 0.8 and abs(np.nanmedian(delays) - reported) < tol, (delays, reported)  # NaN: no pulse


def test_stream_reports_device_latency(jack_server: JackServer) -> None:
    with LiveSession(StftPassthroughProcessor, input="system", output="system", blocksize=256) as live:
        lat = live.engine.latency
        assert lat.device_input + lat.device_output > 0  # PortAudio's JACK host reports its buffers
        assert live.active


CALLBACK_PLACES = pytest.mark.parametrize("callback_process", [False, True], ids=["callback-here", "callback-process"])


@CALLBACK_PLACES
@pytest.mark.parametrize("channels", [1, 2])
def test_passthrough_returns_after_exactly_the_reported_latency(jack_server: JackServer, channels: int,
                                                                 callback_process: bool) -> None:
    engine, peaks, delays, _ = stream_pulses(jack_server, StftPassthroughProcessor, 2.5, channels,
                                             callback_process=callback_process)
    reported = engine.latency.total
    assert_mostly_exact(delays, reported)
    assert np.median(peaks) > 0.45  # pulses come back whole


@CALLBACK_PLACES
def test_a_spinning_worker_plays_at_exactly_the_reported_latency(jack_server: JackServer,
                                                                 callback_process: bool) -> None:
    """``spin_ms``: the worker polls for the next block instead of sleeping, handing the GIL over every slice, so
    the callback in its process still runs on time and every pulse comes back whole at the reported latency."""
    engine, peaks, delays, _ = stream_pulses(jack_server, StftPassthroughProcessor, 2.5,
                                             callback_process=callback_process, spin_ms=3.0)
    assert_mostly_exact(delays, engine.latency.total)
    assert np.median(peaks) > 0.45 and engine.worker_errors == 0


@CALLBACK_PLACES
def test_slow_model_drops_out_callback_stays_on_time_and_recovers(jack_server: JackServer,
                                                                  callback_process: bool) -> None:
    # Calls are every 8 ms; calls 100-102 each take 120 ms: the worker misses ~350 ms of deadlines.
    def make() -> Processor:
        return SlowProcessor(StftPassthroughProcessor(), sleep_s=0.12, late_calls={100, 101, 102})

    t0 = time.monotonic()
    engine, peaks, delays, starts = stream_pulses(jack_server, make, 4.0, callback_process=callback_process)
    elapsed = time.monotonic() - t0
    # The callback never waits on the worker: its longest call, timed by the callback itself, is far
    # below one slow call (120 ms). Waiting on even one would take the whole 120 ms. The device's xrun
    # count is no measure of this: on a loaded VM the dummy driver's timer xruns by itself (0-47 in
    # 4 s, more while the worker catches up after the stall), in the slow run as in a fast one.
    assert 0 < engine.callback_max_ms < 0.5 * 120, engine.callback_max_ms
    assert engine.dropouts > 0  # it filled the gap instead
    # The callback kept its pace: ~one block per 256 samples of wall time while the worker slept.
    assert engine.blocks >= 0.8 * 4.0 * 48000 / 256
    assert elapsed < 20
    # After recovery every pulse is back at exactly the same latency.
    late = [d for d, s in zip(delays, starts, strict=True) if s > 2.0 * 48000]
    assert_mostly_exact(late, engine.latency.total)


@CALLBACK_PLACES
def test_parameter_changes_while_streaming(jack_server: JackServer, callback_process: bool) -> None:
    def during(engine: Engine) -> None:
        time.sleep(1.0)
        engine.set_params(input_gain_db=-6.0206)
        time.sleep(1.0)
        engine.set_params(bypass=True)

    engine, peaks, delays, starts = stream_pulses(jack_server, StftPassthroughProcessor, 3.2, during=during,
                                                  callback_process=callback_process)
    reported = engine.latency.total
    # Latency holds across gain change and bypass (the dry path is delayed to match).
    assert_mostly_exact(delays, reported, tol=0.6)
    rate = 48000
    early = peaks[[s < 0.8 * rate for s in starts]]
    late = peaks[[s > 2.4 * rate for s in starts]]
    assert np.median(early) > 0.45 and abs(np.median(late) - 0.25) < 0.03
    assert engine.params.bypass


def test_probe_in_its_own_process_measures_the_same_latency(jack_server: JackServer) -> None:
    """The benchmarks' probe (a child process, so its Python callback takes no GIL from the engine)
    sees each pulse after exactly the reported latency, as the in-process probe does."""
    with LiveSession(StftPassthroughProcessor, input="system", output="system", blocksize=256) as live:
        with ProbeProcess(jack_server.name) as probe:
            probe.connect()
            signal, pulse, starts = pulse_train(probe.samplerate, 2.0)
            recorded = probe.play_and_record(signal)
        assert recorded.shape == signal.shape and recorded.dtype == np.float32
        period = starts[1] - starts[0]
        delays = [find_arrivals(recorded, pulse, s + period // 2, period // 2) - s for s in starts]
        assert_mostly_exact(delays, live.engine.latency.total)


def test_probe_process_reports_a_missing_server() -> None:
    with pytest.raises(StylehostError, match="cannot connect to JACK server"):
        ProbeProcess(f"no-such-server-{time.time_ns()}")


def test_a_started_session_freezes_the_heap_it_started_with(jack_server: JackServer) -> None:
    """A full garbage collection of the startup heap (46 ms with a model loaded) would stall the
    callback or the worker; objects alive when the stream starts are frozen out of its reach."""
    import gc

    gc.unfreeze()
    marker = [object()]  # a tracked container made before the session
    with LiveSession(StftPassthroughProcessor, input="system", output="system", blocksize=256):
        assert gc.get_freeze_count() > 0
        assert not any(o is marker for o in gc.get_objects(generation=2))  # frozen: no generation holds it
    assert gc.get_freeze_count() == 0  # stopped: the startup heap is collectable again


@pytest.mark.parametrize("channels", [0, 99])
def test_channels_the_device_cannot_give_are_refused(jack_server: JackServer, channels: int) -> None:
    """Asked-for channels are honoured or refused with the device's counts (they ran as 2 before)."""
    with pytest.raises(StylehostError, match=r"--channels .*choose 1\.\.2"):
        LiveSession(StftPassthroughProcessor, input="system", output="system", channels=channels)
