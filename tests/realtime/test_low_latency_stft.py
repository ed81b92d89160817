"""The low-delay STFT (issue 17, SpectrogramConfig.synthesis_len): the asymmetric window pair reconstructs
exactly, the live processors and the engine shorten their delay by n_fft - S, and a bundle built on that framing
streams exactly as its offline reference does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion.errors import StylehostError
from diffusion.features import SpectrogramTransform
from diffusion.spectrogram import SpectrogramConfig, analysis_window, asymmetric_windows, synthesis_window
from realtime.engine import Engine, EngineConfig
from realtime.processor import StftPassthroughProcessor
from tests.realtime.test_processor import delayed, stream

LOW = SpectrogramConfig(synthesis_len=192)  # n_fft 384, hop 96: synthesis over each frame's last 8 ms


@pytest.mark.parametrize("synthesis_len", [192, 288, 384])
def test_the_asymmetric_pair_overlap_adds_to_one(synthesis_len: int) -> None:
    cfg = SpectrogramConfig(synthesis_len=synthesis_len)
    a, s = asymmetric_windows(cfg)
    assert np.all(s[: cfg.n_fft - synthesis_len] == 0) and np.all(a >= 0) and a.max() == pytest.approx(1.0)
    total = sum(np.roll(a * s, k * cfg.hop) for k in range(cfg.n_fft // cfg.hop))
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    assert a.argmax() == cfg.n_fft - synthesis_len // 2  # the peak lies late, in the synthesis window's middle
    np.testing.assert_array_equal(analysis_window(cfg), a)
    np.testing.assert_array_equal(synthesis_window(cfg), s)


def test_symmetric_windows_are_unchanged_by_default() -> None:
    cfg = SpectrogramConfig()
    assert cfg.synthesis_len == 0 and cfg.synthesis_span == cfg.n_fft
    np.testing.assert_array_equal(analysis_window(cfg), 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(384) / 384))


@pytest.mark.parametrize("bad", [96, 100, 240, 480])
def test_a_synthesis_length_that_cannot_reconstruct_is_refused(bad: int) -> None:
    with pytest.raises(StylehostError, match="synthesis_len"):
        SpectrogramConfig(synthesis_len=bad)


def test_the_torch_transform_inverts_itself_on_the_low_delay_framing() -> None:
    t = SpectrogramTransform(LOW, dtype=torch.float64)
    x = torch.tensor(np.random.default_rng(0).standard_normal((1, 4800)))
    y = t.istft(*t.stft(x))
    inner = slice(LOW.n_fft, y.shape[-1] - LOW.n_fft)  # where every frame overlaps fully
    torch.testing.assert_close(y[:, inner], x[:, : y.shape[-1]][:, inner], atol=1e-10, rtol=0)


@pytest.mark.parametrize("frames,lookahead", [(1, 0), (2, 1), (2, 2), (4, 0)])
def test_the_stft_passthrough_is_exact_with_the_shorter_delay(frames: int, lookahead: int) -> None:
    proc = StftPassthroughProcessor(LOW, frames_per_call=frames, lookahead=lookahead)
    assert proc.delay_samples == 192 + (lookahead - 1) * 96
    x = np.random.default_rng(1).standard_normal(12000).astype(np.float32)
    y = stream(proc, x)
    np.testing.assert_allclose(y, delayed(x, proc.delay_samples, len(y)), atol=1e-5)


def test_the_engine_latency_falls_by_the_frame_length_saved() -> None:
    """Same block, stride and look-ahead: only the overlap term changes, by n_fft - S model samples."""
    cfg = EngineConfig(sample_rate=48000, blocksize=128)
    old = Engine(StftPassthroughProcessor, cfg).latency
    new = Engine(lambda: StftPassthroughProcessor(LOW), cfg).latency
    assert old.total - new.total == pytest.approx(2 * (384 - 192), abs=0.5)
    assert dict(new.processor_parts)["STFT overlap (synthesis window - hop)"] == 2 * (192 - 96)


def test_a_low_delay_bundle_streams_as_its_offline_reference(tmp_path: Path) -> None:
    from export.onnx import export_bundle
    from realtime.backends.choose import open_backend
    from realtime.model_processor import ModelProcessor
    from tests.export.tiny import tiny_model
    from tests.realtime.test_model_processor import MIX, clip, offline

    torch.set_num_threads(1)
    bundle = export_bundle(tiny_model(tmp_path / "low.pt", spectrogram=LOW), tmp_path / "low")
    assert bundle.spectrogram.synthesis_len == 192
    proc = ModelProcessor(bundle, open_backend(bundle, "cpu"), emit=4)
    assert proc.delay_samples == 192 + (bundle.lookahead - 1) * 96
    proc.set_params(style_mix=MIX, strength=0.8, steps=2)
    x = clip()
    y = stream(proc, x)
    want = offline(bundle, proc, x, 2, 0.8)[: len(y)]
    assert np.sqrt(np.mean(want**2)) > 1e-3
    np.testing.assert_allclose(y, want, atol=1e-5, rtol=0)
