"""realtime/mix.py Ramp: the worker's smoothed gains, held values served without a new array per call."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.mix import Ramp


def test_a_ramp_reaches_its_target_in_its_length_then_holds() -> None:
    r = Ramp(1.0, 100)
    np.testing.assert_array_equal(r.next(64), np.ones(64, np.float32))
    r.set(0.0)
    down = np.concatenate([r.next(64), r.next(64)])
    assert np.all(np.diff(down) <= 0) and down[99] == pytest.approx(0.0) and np.all(down[100:] == 0.0)
    np.testing.assert_array_equal(r.next(64), np.zeros(64, np.float32))


def test_a_held_value_is_one_read_only_array_that_does_not_grow() -> None:
    r = Ramp(0.5, 10)
    a, b = r.next(128), r.next(128)
    assert np.shares_memory(a, b) and not a.flags.writeable  # no allocation per call; no caller can change it
    for k in range(200):  # many changes of value: the held array is remade, never doubled
        r.set(float(k % 3), immediate=True)
        assert np.all(r.next(128) == np.float32(k % 3))
    assert len(r._const) == 128
    assert len(r.next(300)) == 300 and len(r._const) == 300


def test_a_spinning_worker_waits_for_a_block_or_its_time_only() -> None:
    """EngineConfig.spin_ms: ``_spin`` returns at once when a whole block waits, else after its time."""
    import time

    from realtime.engine import Engine, EngineConfig
    from realtime.processor import PassthroughProcessor

    engine = Engine(PassthroughProcessor, EngineConfig(blocksize=128, sample_rate=24000, spin_ms=3.0))
    t0 = time.perf_counter()
    engine._spin(0.003, 128)  # nothing waiting: it polls its whole time
    assert time.perf_counter() - t0 >= 0.003
    block, out = np.zeros((128, 1), np.float32), np.zeros((128, 1), np.float32)
    engine.process_block(block, out)  # a block waits now
    t0 = time.perf_counter()
    engine._spin(5.0, 128)
    assert time.perf_counter() - t0 < 1.0  # returned on the block, long before its 5 s


def test_spin_ms_outside_its_range_is_refused() -> None:
    from diffusion.errors import StylehostError
    from realtime.engine import EngineConfig

    with pytest.raises(StylehostError, match="spin_ms"):
        EngineConfig(spin_ms=-1.0)
