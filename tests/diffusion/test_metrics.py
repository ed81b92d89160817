"""Metrics behave as their definitions say, on real signals."""

import numpy as np
import torch

from diffusion.features import SpectrogramConfig, SpectrogramTransform
from diffusion.metrics import chroma_similarity, frechet_distance, log_mel_distance, static_eq_log_gain

CFG = SpectrogramConfig()
SR = CFG.sample_rate


def tone(midi: int, seconds: float = 1.0, harmonics: int = 6, decay: float = 0.6) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    return sum(decay**k * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(harmonics)).astype(np.float32) * 0.1


def test_log_mel_distance_is_zero_for_identity_and_ignores_loudness() -> None:
    tf = SpectrogramTransform(CFG)
    a, b = tone(60), tone(60, decay=0.2)
    assert log_mel_distance(a, a, tf) < 1e-4
    assert log_mel_distance(0.1 * a, a, tf) < 1e-3  # loudness matched first
    assert log_mel_distance(b, a, tf) > 1.0


def test_chroma_similarity_tracks_pitch_not_timbre() -> None:
    same_pitch = chroma_similarity(tone(60, decay=0.2), tone(60, decay=0.8), CFG)
    other_pitch = chroma_similarity(tone(61), tone(60), CFG)
    assert same_pitch > 0.9 and other_pitch < 0.5


def test_static_eq_recovers_a_known_gain() -> None:
    rng = np.random.default_rng(0)
    src = torch.tensor(rng.standard_normal(SR).astype(np.float32) * 0.1)[None]
    tf = SpectrogramTransform(CFG)
    src_lm = tf.log_mel(src)[0].numpy()
    true_gain = np.linspace(-1.0, 1.0, CFG.n_mels)[:, None]
    gain = static_eq_log_gain(src_lm, src_lm + true_gain)
    np.testing.assert_allclose(gain, true_gain, atol=1e-5)


def test_frechet_distance_zero_for_same_set_and_grows_with_shift() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 8))
    assert abs(frechet_distance(a, a)) < 1e-6
    assert frechet_distance(a, a + 1.0) > frechet_distance(a, a + 0.1) > 0.0
