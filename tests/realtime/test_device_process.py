"""The device callback in a process of its own (realtime/device_process.py): the shared rings carry every
sample in order between two processes, the device process holds no model, never outlives its engine, and a
server that goes away is reported as with the in-process callback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.jackserver import JackServer
from realtime.audio import LiveSession
from realtime.device_memory import CallbackMemory
from realtime.processor import StftPassthroughProcessor

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys
import numpy as np
from realtime.device_memory import CallbackMemory, MemoryLayout
fd, frames, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
memory = CallbackMemory(fd, MemoryLayout(512, 2, 1))
ring, _ = memory.rings()
rng = np.random.default_rng(seed)
sent = 0
while sent < frames:
    n = min(int(rng.integers(1, 200)), frames - sent)
    block = np.stack([np.arange(sent, sent + n), -np.arange(sent, sent + n)], axis=1).astype(np.float32)
    done = 0
    while done < n:
        done += ring.write(block[done:])
    sent += n
"""


def test_the_shared_ring_carries_every_frame_in_order_between_two_processes() -> None:
    """A child writes 200,000 numbered frames in seeded random blocks into a 512-frame shared ring while this
    process reads random-sized blocks: every frame arrives once, in order, both channels intact."""
    memory = CallbackMemory.create(512, 2, 1)
    ring, _ = memory.rings()
    frames = 200_000
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(memory.fd), str(frames), "7"], cwd=ROOT,
                             pass_fds=(memory.fd,), env=dict(os.environ, PYTHONPATH=str(ROOT)))
    rng = np.random.default_rng(3)
    got = np.zeros((frames, 2), np.float32)
    have, deadline = 0, time.monotonic() + 120
    while have < frames:
        assert time.monotonic() < deadline, f"only {have} of {frames} frames arrived"
        n = ring.read(got[have : have + int(rng.integers(1, 300))])
        have += n
        if not n:
            assert child.poll() in (None, 0)
    assert child.wait(timeout=30) == 0
    expect = np.arange(frames, dtype=np.float32)
    assert np.array_equal(got[:, 0], expect) and np.array_equal(got[:, 1], -expect)
    assert ring.read_available == 0


def _device_pid(live: LiveSession) -> int:
    device = live._device
    assert device is not None and device._proc is not None
    return device._proc.pid


@pytest.mark.jack
def test_the_device_process_holds_no_model_runtime(jack_server: JackServer) -> None:
    """The callback's process maps neither ONNX Runtime nor torch, though this process has them loaded."""
    import onnxruntime  # noqa: F401 - loaded here on purpose: it must not follow the callback

    with LiveSession(StftPassthroughProcessor, input="system", output="system", blocksize=256, channels=1,
                     callback_process=True) as live:
        deadline = time.monotonic() + 10
        while live.engine.blocks < 50:
            assert time.monotonic() < deadline, "no callbacks from the device process"
            time.sleep(0.05)
        maps = Path(f"/proc/{_device_pid(live)}/maps").read_text()
        assert "portaudio" in maps.lower()  # it is the process with the stream
        assert "onnxruntime" not in maps and "libtorch" not in maps
        assert live.active and live.engine.dropouts == 0 or live.engine.dropouts < live.engine.blocks // 10


OWNER = """
import sys, time
from realtime.audio import LiveSession
from realtime.processor import StftPassthroughProcessor
live = LiveSession(StftPassthroughProcessor, input="system", output="system", blocksize=256, channels=1,
                   callback_process=True).start()
print(live._device._proc.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.jack
def test_a_killed_engine_takes_its_device_process_with_it(jack_server: JackServer) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert owner.stdout is not None
    pid = int(owner.stdout.readline())
    os.kill(pid, 0)  # running
    owner.kill()  # SIGKILL: no teardown at all
    owner.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid):
        assert time.monotonic() < deadline, "the device process outlived its engine"
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0].lower()
    except (OSError, IndexError):
        return "zombie"


@pytest.mark.jack
def test_pinned_cpus_keep_the_worker_and_the_device_process_apart(jack_server: JackServer) -> None:
    """pin_cpus: the device process (and every PortAudio/JACK thread it makes) on the callback CPUs, the worker
    thread on the last CPU; with one CPU there is nothing to split and nothing is pinned."""
    import threading

    from realtime.worker import split_cpus

    callback_cpus, worker_cpus = split_cpus()
    with LiveSession(StftPassthroughProcessor, input="system", output="system", blocksize=256, channels=1,
                     callback_process=True, pin_cpus=True) as live:
        deadline = time.monotonic() + 10
        while live.engine.blocks < 20:
            assert time.monotonic() < deadline, "no callbacks from the device process"
            time.sleep(0.05)
        worker = next(t for t in threading.enumerate() if t.name == "stylehost-worker")
        assert worker.native_id is not None
        if not worker_cpus:  # a one-CPU machine
            assert live.engine.pinned_cpus == []
            return
        assert live.engine.pinned_cpus == sorted(worker_cpus)
        assert os.sched_getaffinity(worker.native_id) == worker_cpus
        pid = _device_pid(live)
        threads = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
        # The threads the stream runs on were made after the mask was set (numpy's BLAS pool may predate it).
        pinned = [t for t in threads if os.sched_getaffinity(t) == callback_cpus]
        masks = [os.sched_getaffinity(t) for t in threads]
        assert os.sched_getaffinity(pid) == callback_cpus and len(pinned) >= 2, masks
    assert os.sched_getaffinity(0) == callback_cpus | worker_cpus  # this (controlling) thread is left alone
