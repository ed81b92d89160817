"""`stylehost bench latency` when no pulse comes back (issue 19): a failed measurement, never 0 ms.

A model that outputs silence (or one so slow that nothing it delivers survives) used to report the best
latency possible: every lost pulse read as a delay of exactly 0. Here a real engine runs a real processor
that outputs zeros through the JACK dummy server, and the delay finder is checked on captured signals.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import realtime.commands
from benchmarks.jackserver import JackServer, find_arrivals
from benchmarks.latency import PULSE, measure_latency, pulse_delays
from realtime.processor import Processor
from stylehost.cli import main


class SilentProcessor(Processor):
    """A model that outputs silence: model-like sizes (24 kHz, 24 ms window, 8 ms stride), zeros out."""

    sample_rate = 24000
    window = 576
    stride = 192
    delay_samples = 384

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        out[:] = 0.0


def _latency_keys(result: dict) -> list[str]:
    return [k for k in result if k.endswith("_latency_ms") or k == "pulse_delays_ms"]


def test_a_recording_without_the_pulse_has_no_arrival() -> None:
    """Silence, or noise 100 dB below the pulse, holds no pulse: NaN, not the search window's start."""
    assert math.isnan(find_arrivals(np.zeros(9600, np.float32), PULSE, 4800, 4800))
    hiss = (1e-6 * np.random.default_rng(0).standard_normal(9600)).astype(np.float32)
    assert math.isnan(find_arrivals(hiss, PULSE, 4800, 4800))
    hiss[5000 : 5000 + len(PULSE)] += PULSE  # the same recording with the pulse back
    assert find_arrivals(hiss, PULSE, 4800, 4800) == pytest.approx(5000, abs=0.01)


def test_lost_pulses_are_never_counted_as_a_delay() -> None:
    """Pulses 1 and 3 of 4 come back 480 samples late, 0 and 2 never: their delays are NaN, not 0."""
    period, starts = 9600, [2400, 12000, 21600, 31200]
    recorded = np.zeros(4 * period + period // 4, np.float32)
    for s in starts[1::2]:
        recorded[s + 480 : s + 480 + len(PULSE)] = PULSE
    delays = pulse_delays(recorded, starts, period)
    assert np.isnan(delays[[0, 2]]).all()
    np.testing.assert_allclose(delays[[1, 3]], 480, atol=0.01)


@pytest.mark.jack
def test_an_engine_returning_silence_is_a_failed_measurement(jack_server: JackServer) -> None:
    result = measure_latency(SilentProcessor, seconds=1.0, server=jack_server.name, blocksize=256)
    assert result["error"].startswith("no pulse came back (0 of 4")
    assert result["pulses"] == 4 and result["pulses_found"] == 0
    assert _latency_keys(result) == []  # no latency figure at all, not 0.0
    assert result["compute_calls"] > 0  # the engine did run: the figures that say why are kept


@pytest.mark.jack
def test_bench_latency_with_a_silent_model_exits_2_and_writes_no_latency(
    jack_server: JackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(realtime.commands, "processor_factory", lambda model, backend, **kw: (SilentProcessor, True))
    out = tmp_path / "lat.json"
    assert main(["bench", "latency", "--seconds", "1", "--server", jack_server.name, "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stylehost: error: dsp-passthrough, block 256: no pulse came back")
    result = json.loads(out.read_text())  # the JSON records the failure, with no latency in it
    assert "no pulse came back" in result["error"] and _latency_keys(result) == []
    found = tmp_path / "find.json"
    assert main(["bench", "latency", "--find-blocksize", "--max-blocksize", "128", "--seconds", "0.5",
                 "--server", jack_server.name, "--json", str(found)]) == 2
    (search,) = json.loads(found.read_text())["find_blocksize"]
    assert search["smallest_blocksize"] is None and search["end_to_end_latency_ms"] is None  # silence is no pass
    assert search["error"] == "no pulse came back at any block size tried (64, 128)"
    assert all(_latency_keys(t) == [] for t in search["tried"])


def busy_model() -> Processor:
    """A model whose every other call takes 7.6 ms of its 8-ms stride: half its calls are past the governor's 90%
    line, so the governor plays it dry, yet at a mean load under 50% it keeps up when left to play."""
    from realtime.processor import SlowProcessor, StftPassthroughProcessor

    return SlowProcessor(StftPassthroughProcessor(), sleep_s=0.0076, late_calls=set(range(0, 1_000_000, 2)))


@pytest.mark.jack
def test_a_model_the_governor_played_dry_is_no_model_figure(jack_server: JackServer) -> None:
    """The dry line plays at the model's latency, so its pulses come back on time: the run once reported them
    as the model's latency. Now it is an error, the figure kept only as the dry line's."""
    result = measure_latency(busy_model, seconds=3.0, server=jack_server.name, blocksize=256)
    assert result["governor"] is True and result["dry_strides"] > 0.01 * result["compute_calls"]
    assert result["model_share"] < 0.99
    assert result["error"].startswith("the load governor played the dry line for ")
    assert _latency_keys(result) == ["dry_line_latency_ms"]  # no end_to_end_latency_ms
    assert result["dry_line_latency_ms"] > 0


@pytest.mark.jack
def test_without_the_governor_the_same_model_plays_every_stride(jack_server: JackServer) -> None:
    result = measure_latency(busy_model, seconds=3.0, server=jack_server.name, blocksize=256, governor=False)
    assert "error" not in result and result["governor"] is False
    assert result["dry_strides"] == 0 and result["model_share"] == 1.0
    assert result["compute_calls"] > 300  # 3 s of 8-ms strides
    assert result["end_to_end_latency_ms"] == pytest.approx(result["reported_latency_ms"], abs=1.0)
