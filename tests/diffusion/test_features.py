"""The torch transform against an independent numpy reference (np.fft.rfft per frame)."""

import numpy as np
import pytest
import torch

from diffusion.errors import StylehostError
from diffusion.features import SpectrogramConfig, SpectrogramTransform, hann_window, mel_filterbank


def reference_log_mel(x: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    n = cfg.num_frames(len(x))
    frames = np.stack([x[j * cfg.hop : j * cfg.hop + cfg.n_fft] for j in range(n)])
    mag = np.abs(np.fft.rfft(frames * hann_window(cfg.n_fft), axis=-1)).T  # (F, T)
    return np.log(np.maximum(mel_filterbank(cfg) @ mag, cfg.log_floor))


def make_signal(cfg: SpectrogramConfig, seconds: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(cfg.sample_rate * seconds)) / cfg.sample_rate
    tones = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (110.0, 440.0, 1234.5, 5000.0))
    return tones + 0.01 * rng.standard_normal(len(t))


CONFIGS = [SpectrogramConfig(), SpectrogramConfig(sample_rate=16000, n_fft=512, hop=128, f_max=8000.0)]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_log_mel_matches_numpy_reference(cfg: SpectrogramConfig) -> None:
    x = make_signal(cfg)
    ref = reference_log_mel(x, cfg)
    tf = SpectrogramTransform(cfg, dtype=torch.float64)
    got = tf.log_mel(torch.tensor(x)[None])[0].numpy()
    assert got.shape == ref.shape == (cfg.n_mels, cfg.num_frames(len(x)))
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    # float32, the dtype every backend runs, stays close too.
    got32 = SpectrogramTransform(cfg).log_mel(torch.tensor(x, dtype=torch.float32)[None])[0].numpy()
    np.testing.assert_allclose(got32, ref, atol=2e-3, rtol=0)


def test_istft_reconstructs_exactly_where_frames_overlap() -> None:
    cfg = SpectrogramConfig()
    x = torch.tensor(make_signal(cfg), dtype=torch.float64)[None]
    tf = SpectrogramTransform(cfg, dtype=torch.float64)
    y = tf.istft(*tf.stft(x))
    edge = cfg.n_fft - cfg.hop  # samples at each end that lack full overlap
    n = y.shape[-1]
    np.testing.assert_allclose(y[0, edge : n - edge].numpy(), x[0, edge : n - edge].numpy(), atol=1e-9)


def test_mel_filterbank_peaks_at_band_centres() -> None:
    cfg = SpectrogramConfig()
    fb = mel_filterbank(cfg)
    assert fb.shape == (cfg.n_mels, cfg.n_freqs)
    assert (fb.sum(axis=1) > 0).all()
    peaks = fb.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()  # bands ascend in frequency


def test_config_validation_and_round_trip() -> None:
    cfg = SpectrogramConfig()
    assert SpectrogramConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(StylehostError, match="unknown SpectrogramConfig keys"):
        SpectrogramConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(StylehostError, match="multiple of hop"):
        SpectrogramConfig(n_fft=384, hop=128)
