"""The engine offline (blocks fed by hand, the way render does): exact latency, params, dropouts."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from benchmarks.jackserver import find_arrivals
from diffusion.errors import StylehostError
from realtime.engine import Engine, EngineConfig
from realtime.params import EngineParams
from realtime.processor import PassthroughProcessor, Processor, StftPassthroughProcessor


class ZeroProcessor(PassthroughProcessor):
    """Outputs silence: makes the dry path audible in wet/dry tests."""

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        out[:] = 0.0


def run(engine: Engine, x: np.ndarray, on_block=None) -> np.ndarray:
    """Feed x (frames, channels) block by block: callback then worker, as live with zero compute time."""
    B = engine.config.blocksize
    n = len(x) // B * B
    y = np.zeros((n, engine.config.out_channels), np.float32)
    for k, i in enumerate(range(0, n, B)):
        if on_block is not None:
            on_block(k)
        engine.process_block(np.ascontiguousarray(x[i : i + B]), y[i : i + B])
        engine.pump()
    return y


@pytest.mark.parametrize("blocksize", [64, 256, 1000])
@pytest.mark.parametrize("make", [PassthroughProcessor, StftPassthroughProcessor])
def test_exact_passthrough_at_model_rate(blocksize: int, make: type[Processor]) -> None:
    engine = Engine(make, EngineConfig(sample_rate=24000, blocksize=blocksize))
    L = engine.latency.algorithmic
    assert L == int(L)
    x = 0.1 * np.random.default_rng(0).standard_normal((24000, 1)).astype(np.float32)  # below the soft clip knee
    y = run(engine, x)
    expected = np.concatenate([np.zeros((int(L), 1), np.float32), x])[: len(y)]
    np.testing.assert_allclose(y, expected, atol=1e-5)
    assert engine.dropouts == 0


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
def test_latency_accounting_with_resampling(rate: int) -> None:
    engine = Engine(StftPassthroughProcessor, EngineConfig(sample_rate=rate, blocksize=256))
    n = 2 * rate
    pulse = np.hanning(int(0.002 * rate) + 2)[1:-1].astype(np.float32)
    x = np.zeros((n, 1), np.float32)
    starts = [rate // 10, rate // 2 + 17, rate + 333]
    for s in starts:
        x[s : s + len(pulse), 0] = pulse
    y = run(engine, x)[:, 0]
    L = engine.latency.algorithmic
    for s in starts:
        assert find_arrivals(y, pulse, s + int(L), 100) - s == pytest.approx(L, abs=0.15)
    assert engine.dropouts == 0


def test_latency_breakdown_sums() -> None:
    lat = Engine(StftPassthroughProcessor, EngineConfig(sample_rate=48000, blocksize=256)).latency
    assert lat.processor == 2 * 384
    assert lat.algorithmic == pytest.approx(lat.processor + lat.resampler + lat.buffering + lat.block + lat.margin)
    assert lat.algorithmic_ms == pytest.approx(1000 * lat.algorithmic / 48000)
    # Blocks of 128 model samples against a stride of 192 leave a backlog of 128, 64, 0, 128, ...
    # model samples before each call: the worst, one block (256 device samples), is what must be
    # buffered, plus a sample of resampler rounding.
    assert 256 <= lat.buffering <= 256 + 4


def test_latency_budget_names_every_term_and_sums_to_the_total() -> None:
    """The budget table (docs/live.md, issue 17) splits the processor's delay by framing: the STFT passthrough
    (n_fft 384, hop 96, look-ahead 1 at 24 kHz) is 288 samples of overlap + 96 of look-ahead, doubled at 48 kHz."""
    import dataclasses

    lat = Engine(StftPassthroughProcessor, EngineConfig(sample_rate=48000, blocksize=256)).latency
    lat = dataclasses.replace(lat, device_input=256, device_output=512)
    rows = {r["term"]: r for r in lat.budget()}
    assert rows["STFT overlap (synthesis window - hop)"]["samples"] == 576
    assert rows["look-ahead (1 frame)"]["samples"] == 192
    assert rows["device output buffer"]["samples"] == 512
    assert sum(float(r["samples"]) for t, r in rows.items() if t != "total") == pytest.approx(lat.total, abs=0.5)
    assert rows["total"]["ms"] == pytest.approx(lat.total_ms, abs=0.01)


def test_wet_dry_bypass_ramps_without_clicks() -> None:
    engine = Engine(ZeroProcessor, EngineConfig(sample_rate=24000, blocksize=128, smoothing_ms=20))
    t = np.arange(24000) / 24000
    x = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)[:, None]
    changes = {40: {"wet": 0.0}, 120: {"bypass": True}, 140: {"bypass": False}}
    y = run(engine, x, lambda k: changes.get(k) and engine.set_params(**changes[k]))[:, 0]
    L = int(engine.latency.algorithmic)
    dry = np.concatenate([np.zeros(L, np.float32), x[:, 0]])[: len(y)]
    assert np.abs(y[: 40 * 128]).max() == 0.0  # fully wet: the zero processor's silence
    # fully dry later, and exactly aligned with the input delayed by the latency
    np.testing.assert_allclose(y[60 * 128 : 118 * 128], dry[60 * 128 : 118 * 128], atol=1e-6)
    max_step = np.abs(np.diff(y)).max()
    sine_step = 2 * np.pi * 200 / 24000 * 0.5
    assert max_step < 1.1 * sine_step  # ramps, no jumps
    assert engine.dropouts == 0


def test_input_gain_and_params_validation() -> None:
    engine = Engine(PassthroughProcessor, EngineConfig(sample_rate=24000, blocksize=256))
    engine.set_params(input_gain_db=-6.0206)
    x = np.ones((24000, 1), np.float32)
    y = run(engine, x)
    assert y[-1000:, 0] == pytest.approx(0.5, abs=1e-4)
    # Which styles exist is the bundle's to say (realtime/session.py): any name passes, a non-name does not.
    assert engine.set_params(style_mix=(("kazoo", 1.0),)).style_mix == (("kazoo", 1.0),)
    with pytest.raises(StylehostError, match="non-empty string"):
        engine.set_params(style_mix=(("", 1.0),))
    with pytest.raises(StylehostError, match="unknown engine parameters"):
        engine.set_params(volume=3)
    with pytest.raises(StylehostError):
        EngineParams(strength=2.0)
    assert engine.params.input_gain_db == -6.0206


def test_processor_receives_model_params() -> None:
    seen: list[dict] = []

    class Recording(PassthroughProcessor):
        def set_params(self, **params: object) -> None:
            seen.append(params)

    engine = Engine(Recording, EngineConfig(sample_rate=24000, blocksize=256))
    engine.set_params(style_mix=(("violin", 3.0), ("flute", 1.0)), steps=2)
    run(engine, np.zeros((2560, 1), np.float32))
    engine.set_params(wet=0.5)  # engine-side only: the processor is not bothered
    run(engine, np.zeros((2560, 1), np.float32))
    assert seen == [{"style_mix": {"violin": 0.75, "flute": 0.25}, "strength": 0.7, "steps": 2}]


@pytest.mark.parametrize("mode", ["mid", "per-channel"])
def test_stereo_modes(mode: str) -> None:
    cfg = EngineConfig(sample_rate=24000, blocksize=256, in_channels=2, out_channels=2, stereo_mode=mode)
    engine = Engine(PassthroughProcessor, cfg)
    assert len(engine.processors) == (1 if mode == "mid" else 2)
    rng = np.random.default_rng(3)
    x = 0.1 * rng.standard_normal((12000, 2)).astype(np.float32)  # below the soft clip knee
    y = run(engine, x)
    L = int(engine.latency.algorithmic)
    src = x.mean(axis=1, keepdims=True).repeat(2, axis=1) if mode == "mid" else x
    np.testing.assert_allclose(y[L:], src[: len(y) - L], atol=1e-6)


def test_underrun_fades_counts_and_keeps_latency() -> None:
    """Withhold the worker for a while: the callback fades out, owes samples, then realigns exactly."""
    engine = Engine(PassthroughProcessor, EngineConfig(sample_rate=24000, blocksize=256))
    x = 0.1 * np.random.default_rng(4).standard_normal((24000, 1)).astype(np.float32)  # below the soft clip knee
    B, L = 256, int(engine.latency.algorithmic)
    y = np.zeros_like(x)
    for k, i in enumerate(range(0, len(x) // B * B, B)):
        engine.process_block(x[i : i + B].copy(), y[i : i + B])
        if not 20 <= k < 30:  # a worker stalled for 10 blocks
            engine.pump()
    assert engine.dropouts > 0
    expected = np.concatenate([np.zeros((L, 1), np.float32), x])[: len(y)]
    tail = slice(50 * B, len(x) // B * B)
    np.testing.assert_allclose(y[tail], expected[tail], atol=1e-6)  # recovered, same latency
    first_bad = 20 * B + engine._prime - B
    assert np.abs(np.diff(y[first_bad - 10 : first_bad + 200, 0])).max() < 2 * np.abs(x).max()


def test_callback_does_not_allocate() -> None:
    engine = Engine(PassthroughProcessor, EngineConfig(sample_rate=24000, blocksize=256))
    block = np.ones((256, 1), np.float32)
    out = np.zeros((256, 1), np.float32)
    engine.process_block(block, out)
    engine.pump()
    tracemalloc.start()
    for _ in range(500):  # includes underruns (no pump): the fade path must not allocate either
        engine.process_block(block, out)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert engine.dropouts > 0
    assert peak < 4096  # one block of samples would be 1024 bytes per call, 500 calls far more
