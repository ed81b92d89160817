"""RingBuffer against a plain list: seeded random block sizes, wrap-around, overrun, underrun."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from diffusion.errors import StylehostError
from realtime.ringbuffer import RingBuffer


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("channels", [1, 2])
def test_matches_list_with_random_blocks(seed: int, channels: int) -> None:
    rng = np.random.default_rng(seed)
    ring = RingBuffer(97, channels, debug=True)  # prime capacity: every offset wraps somewhere
    reference: list[np.ndarray] = []
    counter = 0
    for _ in range(2000):
        if rng.random() < 0.5:
            n = int(rng.integers(0, 130))
            data = (counter + np.arange(n, dtype=np.float32))[:, None].repeat(channels, axis=1)
            counter += n
            written = ring.write(data)
            assert written == min(n, 97 - len(reference))  # overrun drops the tail
            reference.extend(data[:written])
        else:
            n = int(rng.integers(0, 130))
            out = np.full((n, channels), -1.0, np.float32)
            got = ring.read(out)
            assert got == min(n, len(reference))  # underrun returns what there is
            expected = np.array(reference[:got]).reshape(got, channels)
            np.testing.assert_array_equal(out[:got], expected)
            assert np.all(out[got:] == -1.0)  # untouched beyond what was read
            del reference[:got]
        assert ring.read_available == len(reference)
        assert ring.write_available == 97 - len(reference)


def test_wraparound_overrun_underrun_discard() -> None:
    ring = RingBuffer(8)
    assert ring.write(np.arange(6, dtype=np.float32)[:, None]) == 6
    out = np.zeros((5, 1), np.float32)
    assert ring.read(out) == 5
    assert ring.write(np.arange(10, 20, dtype=np.float32)[:, None]) == 7  # wraps, then overruns by 3
    assert ring.write_available == 0
    assert ring.discard(2) == 2
    out = np.zeros((10, 1), np.float32)
    assert ring.read(out) == 6  # underrun: only 6 left
    np.testing.assert_array_equal(out[:6, 0], [11, 12, 13, 14, 15, 16])
    assert ring.read(out) == 0
    assert ring.write_zeros(3) == 3 and ring.read(out) == 3 and not out[:3].any()


def test_debug_checks_shape_and_dtype() -> None:
    ring = RingBuffer(8, 2, debug=True)
    with pytest.raises(StylehostError):
        ring.write(np.zeros((4, 1), np.float32))
    with pytest.raises(StylehostError):
        ring.write(np.zeros((4, 2), np.float64))


def test_no_allocation_after_construction() -> None:
    """Thousands of write/read calls allocate no sample buffers (only tiny transient view objects)."""
    ring = RingBuffer(4096, 2)
    block = np.ones((1000, 2), np.float32)
    out = np.zeros((1000, 2), np.float32)
    ring.write(block)
    ring.read(out)
    tracemalloc.start()
    for _ in range(2000):
        ring.write(block)
        ring.read(out)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4096  # one block alone would be 8000 bytes
