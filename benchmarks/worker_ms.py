"""The engine's own cost per stride, around a processor that costs nothing.

    python -m benchmarks.worker_ms [--stride 96,192] [--blocksize 128] [--seconds 20] [--out PREFIX]

Why: at one frame per call (a 4-ms stride, issue 17) the worker's work outside the processor (the block-side
input guards, taps, dry line and resampling to the model rate; the resampling back; the level match, wet/dry mix,
soft clip and output ring) was 0.7 ms of every stride in a live trace (docs/live.md, session 22). This times that
work alone: the engine offline (``process_block`` then ``pump``, as ``render`` drives it) at 48 kHz with the
DSP passthrough (a copy) as its processor, on a tone, in the same process for each stride asked for.

Reported per stride: ``engine_ms`` (the wall time of the whole loop over the strides made, untraced), from a
second pass with the per-call trace (realtime/calltrace.py) the mean of its ``input``, ``resample``, ``mix`` and
``processor`` parts, and ``outside_processor_ms`` = engine_ms - the traced processor mean. ``--out PREFIX``
writes PREFIX.json and PREFIX.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from benchmarks.processor_ms import write_report
from diffusion.config import parse_list
from realtime.engine import Engine, EngineConfig
from realtime.processor import PassthroughProcessor

MODEL_RATE = 24000
DEVICE_RATE = 48000


def _engine(stride: int, blocksize: int) -> Engine:
    def make() -> PassthroughProcessor:
        return PassthroughProcessor(sample_rate=MODEL_RATE, window=4 * stride, stride=stride, delay=2 * stride)
    return Engine(make, EngineConfig(sample_rate=DEVICE_RATE, blocksize=blocksize))


def _tone(seconds: float, blocksize: int) -> np.ndarray:
    n = int(seconds * DEVICE_RATE) // blocksize * blocksize
    t = np.arange(n) / DEVICE_RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[:, None]


def _drive(engine: Engine, x: np.ndarray) -> float:
    """Seconds of worker-side time (``pump``) over ``x``, block by block; the callback side is not counted."""
    b = engine.config.blocksize
    out = np.zeros((b, 1), np.float32)
    spent = 0.0
    for i in range(0, len(x), b):
        engine.process_block(x[i : i + b], out)
        t0 = time.perf_counter()
        engine.pump()
        spent += time.perf_counter() - t0
    return spent


def worker_ms(stride: int, blocksize: int = 128, seconds: float = 20.0) -> dict[str, Any]:
    x = _tone(seconds, blocksize)
    engine = _engine(stride, blocksize)
    _drive(engine, x[: 50 * blocksize])  # warm up: first allocations, caches
    calls0 = engine.compute_count
    spent = _drive(engine, x)
    strides = engine.compute_count - calls0
    traced = _engine(stride, blocksize)
    _drive(traced, x[: 50 * blocksize])
    trace = traced.enable_trace()
    _drive(traced, x)
    rec = trace.records()
    parts = {p: 1000.0 * float(np.mean(rec[p])) for p in ("input", "resample", "mix", "processor")}
    return {"stride_samples": stride, "stride_ms": 1000.0 * stride / MODEL_RATE, "blocksize": blocksize,
            "strides": strides, "engine_ms": 1000.0 * spent / strides,
            "outside_processor_ms": 1000.0 * spent / strides - parts["processor"], "traced_parts_ms": parts}


def _line(r: dict[str, Any]) -> str:
    p = r["traced_parts_ms"]
    return (f"stride {r['stride_samples']} ({r['stride_ms']:.0f} ms), block {r['blocksize']}: engine "
            f"{r['engine_ms']:.3f} ms per stride, {r['outside_processor_ms']:.3f} outside the processor; traced parts "
            f"input {p['input']:.3f}, resample {p['resample']:.3f}, mix {p['mix']:.3f}, processor "
            f"{p['processor']:.3f} ms ({r['strides']} strides)")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.worker_ms", description=__doc__.split("\n")[0])
    p.add_argument("--stride", default="96,192", help="model-rate strides to time, e.g. 96,192")
    p.add_argument("--blocksize", type=int, default=128)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--out", default=None, help="write PREFIX.json and PREFIX.md")
    args = p.parse_args(argv)
    results = [worker_ms(s, args.blocksize, args.seconds) for s in parse_list(args.stride, int, "stride")]
    lines = [_line(r) for r in results]
    for line in lines:
        print(line)
    if args.out:
        write_report(args.out, "benchmarks.worker_ms", argv, results, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
