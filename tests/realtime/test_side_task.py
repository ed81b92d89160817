"""SideTask (realtime/side_task.py) and the processors' excitation on it: same output, its errors on the owner."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import numpy as np
import pytest

from export.bundle import load_bundle
from realtime.backends.choose import open_backend
from realtime.side_task import SideTask
from realtime.stream_processor import make_processor

ROOT = Path(__file__).resolve().parents[2]


class Owner:
    def __init__(self) -> None:
        self.seen: list[int] = []
        self.task = SideTask(self.work)

    def work(self, n: int) -> int:
        if n < 0:
            raise ValueError("negative")
        self.seen.append(threading.get_ident())
        return 2 * n


def side_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "stylehost-side"]


def test_a_side_task_runs_on_its_own_thread_and_hands_back_results_and_errors() -> None:
    owner = Owner()
    for n in range(5):
        owner.task.start(n)
        assert owner.task.wait() == 2 * n
    assert set(owner.seen) != {threading.get_ident()} and len(set(owner.seen)) == 1
    owner.task.start(-1)
    with pytest.raises(ValueError, match="negative"):
        owner.task.wait()
    owner.task.start(3)  # an error does not end the thread
    assert owner.task.wait() == 6
    with pytest.raises(RuntimeError, match="without start"):
        owner.task.wait()
    owner.task.start(4)
    owner.task.start(5)  # the first result is collected before the second call starts
    assert owner.task.wait() == 10
    owner.task.close()
    owner.task.close()
    with pytest.raises(RuntimeError, match="closed"):
        owner.task.start(1)


def test_a_dropped_owner_is_collected_and_its_thread_ends() -> None:
    gc.collect()  # processors earlier tests left in reference cycles close their side threads now, not mid-count
    before = len(side_threads())
    owner = Owner()
    owner.task.start(1)
    owner.task.wait()
    assert len(side_threads()) == before + 1
    task = owner.task
    del owner
    gc.collect()
    task.start(1)  # the weak reference is dead: an error on the owner, not a hang
    with pytest.raises(RuntimeError, match="owner is gone"):
        task.wait()
    task.close()
    assert len(side_threads()) == before


def tone(seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.05 * np.sin(3 * t)))).astype(np.float32)


@pytest.mark.parametrize("name", ["streaming", "low-latency"])
def test_the_excitation_on_the_side_thread_changes_no_sample(name: str) -> None:
    procs = []
    for side in (False, True):
        bundle = load_bundle(ROOT / "models" / name)
        proc = make_processor(bundle, open_backend(bundle, "cpu"), emit=int(bundle.defaults["emit"]),
                              side_thread=side)
        proc.set_params(style_mix={"violin": 1.0}, strength=bundle.defaults["strength"],
                        steps=bundle.defaults["steps"])
        procs.append(proc)
    assert procs[0]._side is None and procs[1]._side is not None
    x = tone(1.0, procs[0].sample_rate)
    stride, outs = procs[0].stride, []
    for proc in procs:
        win, out, chunks = np.zeros(proc.window, np.float32), np.zeros(stride, np.float32), []
        for k in range(len(x) // stride):
            win[:-stride] = win[stride:]
            win[-stride:] = x[k * stride : (k + 1) * stride]
            proc.process(win, out)
            chunks.append(out.copy())
        outs.append(np.concatenate(chunks))
    assert np.abs(outs[0]).max() > 1e-3
    np.testing.assert_array_equal(outs[0], outs[1])


def test_a_denoiser_that_hears_the_excitation_makes_it_in_line() -> None:
    bundle = load_bundle(ROOT / "models" / "default")  # gated: the frontend reads the excitation window
    proc = make_processor(bundle, open_backend(bundle, "cpu"))
    assert proc.denoiser_input == "gated" and proc._side is None
