"""Shared fixtures: a real JACK server (dummy driver) per module, and a small rendered paired dataset."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.jackserver import JackServer


@pytest.fixture(scope="module")
def jack_server() -> Iterator[JackServer]:
    """A private ``jackd -d dummy -r 48000 -p 256`` with PortAudio pointed at it; killed by pid after."""
    if shutil.which("jackd") is None:  # scripts/setup.sh installs it; a missing server is a failure
        pytest.fail("needs the jackd binary (Debian jackd2): run scripts/setup.sh")
    with JackServer(rate=48000, period=256) as server:
        yield server


@pytest.fixture(autouse=True)
def _jack_server_still_cycles(request: pytest.FixtureRequest) -> None:
    """A test left the module's server dead or wedged: the next test fails at once, saying so, instead of
    hanging on the server until pytest's timeout (a CI run once lost 40 minutes that way)."""
    if "jack_server" in request.fixturenames:
        server: JackServer = request.getfixturevalue("jack_server")
        if not server.cycling():
            pytest.fail(f"JACK server {server.name!r} no longer runs process cycles (dead or wedged by an "
                        "earlier test in this module)")


SMALL_STYLES = "piano,guitar,flute"


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`stylehost data render --small` for three styles, rendered once per test session (~10 s)."""
    from stylehost.cli import main

    out = tmp_path_factory.mktemp("small")
    assert main(["data", "render", "--small", "--quiet", "--styles", SMALL_STYLES, "--out", str(out)]) == 0
    return out
