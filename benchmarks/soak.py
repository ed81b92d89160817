"""Soak: stream minutes of audio time through the real engine; memory, latency and dropouts must not grow.

    python -m benchmarks.soak --minutes 10 --json benchmarks/results/soak.json   # live, private JACK dummy server
    python -m benchmarks.soak --minutes 10 --offline                             # engine pumped offline (fast)

Live: a LiveSession on a JACK server (JACK_DEFAULT_SERVER, else a private ``jackd -d dummy``) and a
loopback probe that plays a pulse train in chunks of ``--chunk`` seconds; per chunk it records the
process RSS, the pulse arrival delay against the reported latency, dropouts, xruns and compute p99.
Offline: the same engine fed block by block with tracemalloc on (Python-level allocations, numpy
buffers included). tests/realtime/test_load.py runs the offline form for 24 s of audio in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.jackserver import find_arrivals
from realtime.engine import Engine, EngineConfig
from realtime.processor import Processor, StftPassthroughProcessor

PULSE = (0.5 * np.hanning(34)[1:-1]).astype(np.float32)


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def pulse_chunk(n: int, rate: int, period_s: float = 0.25) -> tuple[np.ndarray, list[int]]:
    """n samples of low noise with a Hann pulse every ``period_s`` (starts at 0.1 s)."""
    x = (1e-3 * np.random.default_rng(len(PULSE)).standard_normal(n)).astype(np.float32)
    starts = list(range(int(0.1 * rate), n - len(PULSE), int(period_s * rate)))
    for s in starts:
        x[s : s + len(PULSE)] += PULSE
    return x, starts


def arrival_delays(recorded: np.ndarray, starts: list[int], latency: float, rate: int) -> list[float]:
    """Delay of each pulse that came back, among those whose arrival lies inside the recording (a lost
    pulse is NaN from find_arrivals and is left out: it is no delay, and ``pulses`` counts only found ones)."""
    search = int(0.05 * rate)
    delays = [find_arrivals(recorded, PULSE, s + round(latency), search) - s
              for s in starts if s + latency + search + len(PULSE) < len(recorded)]
    return [d for d in delays if np.isfinite(d)]


def _summary(chunks: list[dict[str, Any]], latency: float) -> dict[str, Any]:
    """Growth from the first chunk after warm-up to the last, and the worst latency error."""
    warm = chunks[1] if len(chunks) > 2 else chunks[0]
    last = chunks[-1]
    errors = [abs(c["latency_median"] - latency) for c in chunks if c["latency_median"] is not None]
    return {
        "chunks": len(chunks),
        "reported_latency_samples": latency,
        "max_latency_error_samples": max(errors) if errors else None,
        "traced_growth_bytes": last.get("traced_bytes", 0) - warm.get("traced_bytes", 0),
        "rss_growth_bytes": last["rss_bytes"] - warm["rss_bytes"],
        "dropouts": last["dropouts"],
        "xruns": last["xruns"],
        # the share of strides the model played (the rest the load governor played dry, at the same latency)
        "model_share": last["model_calls"] / max(1, last["model_calls"] + last["dry_strides"]),
        "compute_p99_ms_first": warm["compute_p99_ms"],
        "compute_p99_ms_last": last["compute_p99_ms"],
    }


def _chunk_record(engine: Engine, t: float, delays: list[float]) -> dict[str, Any]:
    times = engine.compute_times()
    return {
        "audio_s": round(t, 3),
        "rss_bytes": rss_bytes(),
        "latency_median": float(np.median(delays)) if delays else None,
        "pulses": len(delays),
        "dropouts": engine.dropouts,
        "xruns": engine.xruns,
        "model_calls": engine.compute_count,
        "dry_strides": engine.dry_strides,  # the load governor's dry strides: no model call, the dry line played
        "compute_p99_ms": float(np.percentile(times, 99) * 1000) if len(times) else 0.0,
    }


def soak_offline(seconds: float, chunk_s: float = 4.0, rate: int = 48000, blocksize: int = 256,
                 make: Callable[[], Processor] = StftPassthroughProcessor, params: Any = None) -> dict[str, Any]:
    """The engine pumped block by block (render's way) with tracemalloc on; returns chunks + summary."""
    engine = Engine(make, EngineConfig(sample_rate=rate, blocksize=blocksize), params=params)
    latency = engine.latency.algorithmic
    n = int(chunk_s * rate) // blocksize * blocksize
    x, starts = pulse_chunk(n, rate)
    y = np.zeros((n, 1), np.float32)
    chunks: list[dict[str, Any]] = []
    tracemalloc.start()
    try:
        for k in range(max(1, int(seconds / chunk_s))):
            for i in range(0, n, blocksize):
                engine.process_block(x[i : i + blocksize, None], y[i : i + blocksize])
                engine.pump()
            record = _chunk_record(engine, (k + 1) * n / rate, arrival_delays(y[:, 0], starts, latency, rate))
            record["traced_bytes"] = tracemalloc.get_traced_memory()[0]
            chunks.append(record)
    finally:
        tracemalloc.stop()
    return {"mode": "offline", "sample_rate": rate, "blocksize": blocksize, "chunks": chunks,
            "summary": _summary(chunks, latency)}


def soak_live(seconds: float, chunk_s: float = 10.0, blocksize: int = 256,
              make: Callable[[], Processor] = StftPassthroughProcessor, params: Any = None) -> dict[str, Any]:
    """Real PortAudio streams through JACK, pulses played and recorded by a loopback probe, per chunk."""
    from contextlib import ExitStack

    from benchmarks.jackserver import JackServer, ProbeProcess, server_running
    from realtime.audio import LiveSession

    with ExitStack() as stack:
        name = os.environ.get("JACK_DEFAULT_SERVER")
        if not name or not server_running(name):
            name = stack.enter_context(JackServer()).name
        live = stack.enter_context(LiveSession(make, input="system", output="system", blocksize=blocksize,
                                               params=params))
        probe = stack.enter_context(ProbeProcess(name))  # its own process, as a real source would be
        probe.connect()
        rate = probe.samplerate
        latency = live.engine.latency.total
        x, starts = pulse_chunk(int(chunk_s * rate), rate)
        chunks = []
        for k in range(max(1, int(seconds / chunk_s))):
            recorded = probe.play_and_record(x)
            live.check()
            delays = arrival_delays(recorded, starts, latency, rate)
            chunks.append(_chunk_record(live.engine, (k + 1) * chunk_s, delays))
        return {"mode": "live", "device": live.device_name, "sample_rate": rate, "blocksize": blocksize,
                "probe": "own process", "chunks": chunks, "summary": _summary(chunks, latency)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="audio time to stream")
    p.add_argument("--offline", action="store_true", help="pump the engine offline instead of through JACK")
    p.add_argument("--chunk", type=float, default=None, help="seconds per measurement (default 10 live, 4 offline)")
    p.add_argument("--json", type=Path, default=None, help="write the result here (e.g. benchmarks/results/soak.json)")
    p.add_argument("--model", default="passthrough",
                   help="model bundle (folder or name; 'default' = the shipped one); default: the DSP passthrough")
    args = p.parse_args(argv)
    from realtime.commands import model_defaults, processor_factory
    from realtime.params import EngineParams

    factory, passthrough = processor_factory(args.model, "auto")
    d = model_defaults(factory)
    params = EngineParams(style_mix=(("violin", 1.0),), steps=int(d["steps"]), strength=float(d["strength"]))
    from benchmarks.machine import machine_info

    machine = machine_info()  # at the start: its load average says whether the run had the machine to itself
    t0 = time.monotonic()
    seconds = 60.0 * args.minutes
    if args.offline:
        result = soak_offline(seconds, chunk_s=args.chunk or 4.0, make=factory, params=params)
    else:
        result = soak_live(seconds, chunk_s=args.chunk or 10.0, make=factory, params=params)
    result["model"] = "passthrough" if passthrough else factory.bundle.name  # type: ignore[attr-defined]
    result["wall_s"] = round(time.monotonic() - t0, 1)
    result["machine"] = machine
    result["command"] = " ".join([os.path.basename(sys.executable), "-m", "benchmarks.soak", *(argv or sys.argv[1:])])
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
