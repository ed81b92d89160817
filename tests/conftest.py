"""Fixtures shared by tests/realtime and tests/gui: a real JACK server (dummy driver) per module, by pid."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from realtime.jackserver import JackServer


@pytest.fixture(scope="module")
def jack_server() -> Iterator[JackServer]:
    """A private ``jackd -d dummy -r 48000 -p 256`` with PortAudio pointed at it; killed by pid after."""
    if shutil.which("jackd") is None:
        pytest.skip("needs the jackd binary (Debian jackd2)")
    with JackServer(rate=48000, period=256) as server:
        yield server
