"""Device rates other than the model's through real JACK servers (one at a time, own module).

Kept apart from test_live_jack.py: its module-scoped server must be gone before another starts
(see JackServer: one per process).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from benchmarks.jackserver import JackServer
from realtime.processor import StftPassthroughProcessor
from tests.realtime.test_live_jack import assert_mostly_exact, stream_pulses

pytestmark = [pytest.mark.jack, pytest.mark.skipif(shutil.which("jackd") is None, reason="needs jackd")]


@pytest.mark.parametrize("rate", [44100, 96000])
def test_resampling_device_rates_through_jack(rate: int) -> None:
    with JackServer(rate=rate, period=256) as server:
        # 4 s: 19 pulses, so a dropout or two on a loaded machine is 10% of them, not 20%
        engine, peaks, delays, _ = stream_pulses(server, StftPassthroughProcessor, 4.0)
    assert engine.config.sample_rate == rate
    assert_mostly_exact(delays, engine.latency.total)
    assert np.median(peaks) > 0.3
