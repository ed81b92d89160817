"""SignalTap against a plain list (seeded random block sizes), a reader that falls behind, a reader
racing the writer on another thread, and the engine's taps carrying what it processed."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np

from realtime.engine import Engine, EngineConfig
from realtime.processor import PassthroughProcessor
from realtime.tap import SignalTap


def test_read_new_matches_a_list_with_random_blocks() -> None:
    rng = np.random.default_rng(3)
    tap = SignalTap(1024)
    out = np.zeros(1024, np.float32)
    written: list[float] = []
    got: list[float] = []
    for _ in range(500):
        block = rng.standard_normal(int(rng.integers(1, 40))).astype(np.float32)
        tap.write(block)
        written.extend(block.tolist())
        if rng.random() < 0.6:  # the reader polls often enough to miss nothing
            k = tap.read_new(out)
            got.extend(out[:k].tolist())
    got.extend(out[: tap.read_new(out)].tolist())
    np.testing.assert_array_equal(np.array(got, np.float32), np.array(written, np.float32))
    assert tap.missed == 0 and tap.written == len(written)


def test_slow_reader_skips_to_the_newest_samples() -> None:
    tap = SignalTap(8)
    tap.write(np.arange(13, dtype=np.float32))  # module doc example: slots hold 5..12
    out = np.zeros(16, np.float32)
    k = tap.read_new(out)
    assert k == 8 and out[:k].tolist() == list(range(5, 13)) and tap.missed == 5
    tap.write(np.arange(13, 16, dtype=np.float32))
    short = np.zeros(2, np.float32)
    assert tap.read_new(short) == 2 and short.tolist() == [14, 15] and tap.missed == 6


def test_stereo_blocks_are_mixed_to_mono_and_latest_does_not_consume() -> None:
    tap = SignalTap(16)
    tap.write(np.array([[1.0, 3.0], [2.0, 4.0]], np.float32))
    last = np.zeros(4, np.float32)
    assert tap.latest(last) == 2 and last[:2].tolist() == [2.0, 3.0]
    out = np.zeros(4, np.float32)
    assert tap.read_new(out) == 2 and out[:2].tolist() == [2.0, 3.0]


def test_write_does_not_allocate_sample_buffers() -> None:
    tap = SignalTap(48000, max_block=256)
    block = np.ones((256, 2), np.float32)
    tap.write(block)
    tracemalloc.start()
    for _ in range(200):
        tap.write(block)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 256 * 4  # small views only, never a copy of the block


def test_reader_racing_the_writer_never_sees_torn_data() -> None:
    # The writer writes a ramp; any returned run must be consecutive integers (no torn slots).
    tap = SignalTap(512)
    stop = threading.Event()

    def writer() -> None:
        value = 0
        block = np.zeros(37, np.float32)
        while not stop.is_set() and value < 2_000_000:
            block[:] = np.arange(value, value + 37)
            tap.write(block)
            value += 37

    thread = threading.Thread(target=writer)
    thread.start()
    out = np.zeros(300, np.float32)
    try:
        for _ in range(3000):
            k = tap.read_new(out)
            if k > 1:
                assert np.all(np.diff(out[:k]) == 1.0)
    finally:
        stop.set()
        thread.join()


def test_engine_taps_hold_gained_input_and_output() -> None:
    engine = Engine(PassthroughProcessor, EngineConfig(sample_rate=24000, blocksize=256))
    engine.set_params(input_gain_db=-6.0206)  # x 0.5, applied at once on the first snapshot
    x = np.random.default_rng(1).standard_normal((24064, 1)).astype(np.float32)
    y = np.zeros_like(x)
    for i in range(0, len(x), 256):
        engine.process_block(x[i : i + 256], y[i : i + 256])
        engine.pump()
    tail = np.zeros(4096, np.float32)
    assert engine.input_tap.latest(tail) == 4096
    np.testing.assert_allclose(tail, 0.5 * x[-4096:, 0], atol=1e-5)
    assert engine.output_tap.written > 0
    n = engine.output_tap.latest(tail)
    assert n == 4096 and np.abs(tail).max() > 0.5  # the passthrough output (delayed input) flows


def test_two_taps_over_one_storage_share_samples_and_counter() -> None:
    """What the engine process and the panel do through shared memory (realtime/remote.py)."""
    from multiprocessing.shared_memory import SharedMemory

    shm = SharedMemory(create=True, size=SignalTap.storage_bytes(8))
    try:
        writer, reader = SignalTap(8, storage=shm.buf), SignalTap(8, storage=shm.buf)
        writer.write(np.arange(5, dtype=np.float32))
        out = np.zeros(8, np.float32)
        assert reader.read_new(out) == 5 and reader.written == 5
        np.testing.assert_array_equal(out[:5], np.arange(5))
        writer.write(np.arange(5, 15, dtype=np.float32))  # wraps; the reader skips what was overwritten
        n = reader.read_new(out)
        np.testing.assert_array_equal(out[:n], np.arange(7, 15))
        assert reader.missed == 2
        for tap in (writer, reader):
            tap.release()
    finally:
        shm.close()
        shm.unlink()
