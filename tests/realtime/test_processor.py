"""Processors: exact delayed reconstruction, streamed against the offline reference (the input)."""

from __future__ import annotations

import numpy as np
import pytest

from diffusion.errors import StylehostError
from diffusion.features import SpectrogramConfig
from realtime.processor import PassthroughProcessor, Processor, SlowProcessor, StftPassthroughProcessor


def stream(proc: Processor, x: np.ndarray) -> np.ndarray:
    """Drive a processor the way the engine does: a sliding window, one call per stride."""
    window = np.zeros(proc.window, np.float32)
    out = np.zeros(len(x) // proc.stride * proc.stride, np.float32)
    for i in range(0, len(out), proc.stride):
        window[: -proc.stride] = window[proc.stride :]
        window[-proc.stride :] = x[i : i + proc.stride]
        proc.process(window, out[i : i + proc.stride])
    return out


def delayed(x: np.ndarray, delay: int, n: int) -> np.ndarray:
    return np.concatenate([np.zeros(delay, np.float32), x])[:n]


@pytest.mark.parametrize("window,stride,delay", [(576, 192, 384), (512, 128, 0), (1000, 100, 900)])
def test_passthrough_is_exact_delayed_copy(window: int, stride: int, delay: int) -> None:
    x = np.random.default_rng(0).standard_normal(24000).astype(np.float32)
    proc = PassthroughProcessor(window=window, stride=stride, delay=delay)
    y = stream(proc, x)
    np.testing.assert_array_equal(y, delayed(x, delay, len(y)))


def test_passthrough_rejects_impossible_sizes() -> None:
    with pytest.raises(StylehostError):
        PassthroughProcessor(window=256, stride=192, delay=100)


@pytest.mark.parametrize("frames,lookahead,context", [(1, 0, 0), (2, 1, 0), (4, 2, 3), (3, 0, 5)])
def test_stft_passthrough_reconstructs_input_delayed(frames: int, lookahead: int, context: int) -> None:
    proc = StftPassthroughProcessor(frames_per_call=frames, lookahead=lookahead, context=context)
    cfg = proc.cfg
    assert proc.stride == frames * cfg.hop
    assert proc.window == cfg.n_fft + (context + frames + lookahead - 1) * cfg.hop
    assert proc.delay_samples == cfg.n_fft + (lookahead - 1) * cfg.hop
    x = np.random.default_rng(1).standard_normal(12000).astype(np.float32)
    y = stream(proc, x)
    np.testing.assert_allclose(y, delayed(x, proc.delay_samples, len(y)), atol=1e-5)


def test_stft_passthrough_worked_example() -> None:
    proc = StftPassthroughProcessor(SpectrogramConfig(), frames_per_call=2, lookahead=1)
    assert (proc.stride, proc.window, proc.delay_samples) == (192, 576, 384)


def test_slow_processor_sleeps_only_on_chosen_calls() -> None:
    proc = SlowProcessor(PassthroughProcessor(), sleep_s=0.0, late_calls={1})
    x = np.arange(1920, dtype=np.float32)
    y = stream(proc, x)
    assert proc.calls == 10
    np.testing.assert_array_equal(y, delayed(x, proc.delay_samples, len(y)))
