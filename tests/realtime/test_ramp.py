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
