"""Frame-anchored noise: a pure function of (seed, absolute frame, step), identical across windows."""

import numpy as np
import pytest

from diffusion.noise import FrameNoiseBlocks, batch_frame_noise, frame_noise


def test_overlapping_windows_share_noise_on_shared_frames() -> None:
    a = frame_noise(seed=7, start_frame=100, num_frames=32, n_mels=64)
    b = frame_noise(seed=7, start_frame=104, num_frames=32, n_mels=64)
    assert a.shape == (64, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a[:, 4:], b[:, :28])
    assert not np.allclose(a[:, :4], b[:, 28:])


def test_noise_depends_on_seed_and_step_and_is_standard_normal() -> None:
    base = frame_noise(1, 0, 32, 64)
    assert not np.allclose(base, frame_noise(2, 0, 32, 64))
    assert not np.allclose(base, frame_noise(1, 0, 32, 64, step=1))
    np.testing.assert_array_equal(base, frame_noise(1, 0, 32, 64))
    big = frame_noise(3, 0, 4000, 64)
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1) < 0.01
    assert abs(np.corrcoef(big[:, :-1].ravel(), big[:, 1:].ravel())[0, 1]) < 0.01


def test_batch_noise_stacks_windows() -> None:
    out = batch_frame_noise(5, [0, 3], 8, 16)
    assert out.shape == (2, 1, 16, 8)
    np.testing.assert_array_equal(out[1, 0, :, :5], out[0, 0, :, 3:])
    np.testing.assert_array_equal(frame_noise(5, -2, 3, 4)[:, 2], frame_noise(5, 0, 1, 4)[:, 0])


def test_noise_blocks_serve_frame_noise_bit_for_bit_whatever_the_order() -> None:
    blocks = FrameNoiseBlocks(seed=3, n_mels=16, step=1, block=8)
    out = np.zeros((16, 2), np.float32)
    starts = [*range(-4, 30, 2), 5, 5, 100, -50, 6]  # forward as a stream reads, then jumps back and ahead
    for start in starts:
        blocks.take(start, out)
        np.testing.assert_array_equal(out, frame_noise(3, start, 2, 16, 1))
    view = np.zeros((16, 10), np.float32)[:, -3:]  # a strided view, as a window's newest columns
    blocks.take(7, view)
    np.testing.assert_array_equal(view, frame_noise(3, 7, 3, 16, 1))
    with pytest.raises(ValueError, match="at most 8"):
        blocks.take(0, np.zeros((16, 9), np.float32))
