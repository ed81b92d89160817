"""`stylehost bench latency`: measure end-to-end latency through a real audio server, not compute it.

A JACK-Client probe, in its own process as a real source would be (``ProbeProcess``), plays Hann
pulses (short bursts whose onsets survive restyling) into the live engine's PortAudio inputs and
records its output; each pulse's arrival is the cross-correlation peak, so the measured latency
includes PortAudio's and JACK's buffers as well as the engine's.
Uses the JACK server named by --server or JACK_DEFAULT_SERVER when one is running, else starts a
private dummy-driver server per block size (its period = the block size; no sound card needed).

One run per backend x block size x steps (``--backend cpu,torch --blocksize 128,256 --steps 1,2``).
``--find-blocksize`` instead tries 64, 128, 256, ... and stops at the first block size that streams
``--seconds`` (60 by default) with zero dropouts. JSON layout (``--json``): one run is a flat object
with the issue's keys (``end_to_end_latency_ms``, ``algorithmic_latency_ms``, ``compute_ms_p50``,
``compute_ms_p99``, ``rtf``, ``dropouts``, ``backend``, ``device_name``, ...); several runs are
``{"runs": [...]}``; a search is ``{"find_blocksize": [...]}``; each file also has ``machine``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from diffusion.config import parse_list  # noqa: F401 - re-exported for benchmarks.quality and tests
from diffusion.errors import StylehostError

JACK_HOSTAPI = "JACK Audio Connection Kit"
PULSE_PERIOD_S = 0.2  # pulse spacing: longer than any latency we could measure, so no ambiguity
SEARCH_BLOCKSIZES = (64, 128, 256, 512, 1024, 2048, 4096)
FIND_SECONDS = 60.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=None,
                   help=f"how long to stream pulses per run (default 20; {FIND_SECONDS:g} with --find-blocksize)")
    p.add_argument("--json", default=None, help="write the results here (JSON)")
    p.add_argument("--blocksize", default="256", help="PortAudio callback block (and JACK period); a list "
                                                      "('128,256') measures each")
    p.add_argument("--find-blocksize", action="store_true",
                   help="find the smallest block size (64, 128, 256, ...) with zero dropouts over --seconds")
    p.add_argument("--max-blocksize", type=int, default=SEARCH_BLOCKSIZES[-1], help="where --find-blocksize gives up")
    p.add_argument("--server", default=None, help="JACK server name (default: JACK_DEFAULT_SERVER or private)")
    p.add_argument("--samplerate", type=int, default=48000, help="rate of a private JACK server")
    p.add_argument("--model", default=None, help="model bundle; 'passthrough' = DSP stand-in (default: "
                                                  "models/default when it exists)")
    p.add_argument("--backend", default="auto", help="inference backend(s) for --model; a list ('cpu,torch') "
                                                     "measures each")
    p.add_argument("--margin-ms", type=float, default=6.0, help="engine compute margin")
    p.add_argument("--style", default="violin", help="target style while measuring")
    p.add_argument("--steps", default=None, help="sampling steps (default: the model's recommended); a list "
                                                 "('1,2,4') measures each")
    p.add_argument("--strength", type=float, default=None, help="transfer strength (default: the model's)")


def cli_latency(args: argparse.Namespace) -> int:
    from benchmarks.machine import machine_info
    from realtime.commands import PASSTHROUGH_NOTICE, ModelFactory, params_from_args, processor_factory

    blocksizes = parse_list(args.blocksize, int, "blocksize")
    if any(b <= 0 for b in blocksizes):
        raise StylehostError(f"--blocksize must be positive, got {args.blocksize}")
    require_audio_server(args.server)  # before loading any model: no server is one line, nothing else
    steps_list: list[int | None] = parse_list(args.steps, int, "steps") if args.steps is not None else [None]
    seconds = args.seconds if args.seconds is not None else (FIND_SECONDS if args.find_blocksize else 20.0)
    runs: list[dict[str, Any]] = []
    errors: list[str] = []
    for backend_name in parse_list(args.backend, str, "backend"):
        try:
            factory, passthrough = processor_factory(args.model, backend_name)
        except StylehostError as exc:  # one backend missing must not lose the others' figures
            errors.append(f"{backend_name}: {exc}")
            runs.append({"backend": backend_name, "error": str(exc)})
            print(f"{backend_name}: skipped: {exc}")
            continue
        if passthrough:
            print(PASSTHROUGH_NOTICE)
        if isinstance(factory, ModelFactory):
            backend, model = factory.backend.name, f"{factory.bundle.name} {factory.bundle.version}"
        else:
            backend, model = "dsp-passthrough", "passthrough"
        for steps in steps_list[:1] if passthrough else steps_list:  # the passthrough has no sampler
            params = params_from_args(argparse.Namespace(**{**vars(args), "steps": steps, "wet": 1.0}), factory)
            common = dict(seconds=seconds, server=args.server, samplerate=args.samplerate, margin_ms=args.margin_ms,
                          backend=backend, params=params)
            if args.find_blocksize:
                runs.append({**find_blocksize(factory, max_blocksize=args.max_blocksize, say=print, **common),
                             "model": model})
                continue
            for blocksize in blocksizes:
                result = {**measure_latency(factory, blocksize=blocksize, **common), "model": model}
                _print(result)
                runs.append(result)
        if passthrough:
            break  # the passthrough ignores the backend: measuring it again per backend adds nothing
    if not any("error" not in r for r in runs):
        raise StylehostError("no backend could run: " + "; ".join(errors))
    if args.json:
        if args.find_blocksize:
            out: dict[str, Any] = {"find_blocksize": runs}
        else:
            out = dict(runs[0]) if len(runs) == 1 else {"runs": runs}
        out["machine"] = machine_info()
        write_json(Path(args.json), out)
        print(f"wrote {args.json}")
    return 0


def _print(result: dict[str, Any]) -> None:
    for key, value in result.items():
        if isinstance(value, list):
            continue
        print(f"{key:>28}: {value:.3f}" if isinstance(value, float) else f"{key:>28}: {value}")
    print()


def find_blocksize(
    make_processor: Any, *, seconds: float = FIND_SECONDS, max_blocksize: int = SEARCH_BLOCKSIZES[-1],
    say: Callable[[str], None] = print, **kwargs: Any,
) -> dict[str, Any]:
    """Try 64, 128, 256, ... (doubling past the table) up to ``max_blocksize``; stop at the first with zero
    dropouts over ``seconds``. ``smallest_blocksize`` is None when none passed. Pulse lists are left out of
    the tried runs (each run's full figures are kept otherwise)."""
    tried: list[dict[str, Any]] = []
    smallest = None
    blocksize = SEARCH_BLOCKSIZES[0]
    while blocksize <= max_blocksize:
        result = measure_latency(make_processor, blocksize=blocksize, seconds=seconds, **kwargs)
        result.pop("pulse_delays_ms", None)
        tried.append(result)
        say(f"block {blocksize:>5}: {result['dropouts']} dropouts, {result['xruns']} xruns, end-to-end "
            f"{result['end_to_end_latency_ms']:.2f} ms, compute p99 {result['compute_ms_p99']:.2f} ms, "
            f"rtf {result['rtf']:.3f} over {seconds:g} s")
        if result["dropouts"] == 0:
            smallest = blocksize
            break
        blocksize *= 2
    say(f"smallest block size with zero dropouts over {seconds:g} s: {smallest if smallest else 'none'}"
        + ("" if smallest else f" up to {max_blocksize}"))
    first = tried[0] if tried else {}
    return {"backend": first.get("backend", kwargs.get("backend")), "steps": first.get("steps"),
            "strength": first.get("strength"), "seconds": seconds, "smallest_blocksize": smallest,
            "end_to_end_latency_ms": tried[-1]["end_to_end_latency_ms"] if smallest else None, "tried": tried}


def measure_latency(
    make_processor: Any,
    seconds: float = 20.0,
    blocksize: int = 256,
    server: str | None = None,
    samplerate: int = 48000,
    margin_ms: float = 6.0,
    backend: str = "dsp-passthrough",
    params: Any = None,
) -> dict[str, Any]:
    """Run the live engine on a JACK server and return the measured figures (see module doc)."""
    from realtime.jackserver import JackServer, reinit_portaudio, server_running

    name = require_audio_server(server)
    if _quiet_running(server_running, name):
        old = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = name
        reinit_portaudio()
        try:
            return _measure(make_processor, name, seconds, blocksize, margin_ms, backend, params)
        finally:
            if old is None:
                os.environ.pop("JACK_DEFAULT_SERVER", None)
            else:
                os.environ["JACK_DEFAULT_SERVER"] = old
            reinit_portaudio()
    with JackServer(rate=samplerate, period=blocksize) as srv:
        return _measure(make_processor, srv.name, seconds, blocksize, margin_ms, backend, params)


def require_audio_server(server: str | None) -> str:
    """The JACK server name to measure through; one StylehostError line when there is none to use or start."""
    from realtime.jackserver import server_running

    name = server or os.environ.get("JACK_DEFAULT_SERVER") or "default"
    if shutil.which("jackd") is None and not _quiet_running(server_running, name):
        raise StylehostError(
            "no audio server to measure through: no JACK server running, no `jackd` to start one, "
            "and no sound card is assumed (install jackd2 or start JACK)"
        )
    return name


def _quiet_running(check: Any, name: str) -> bool:
    try:
        return bool(check(name))
    except StylehostError:
        return False


def _jack_device() -> str:
    from realtime.audio import list_devices

    for d in list_devices():
        if d.hostapi == JACK_HOSTAPI and d.max_input_channels and d.max_output_channels:
            return str(d.index)
    raise StylehostError("PortAudio sees no JACK device; is this PortAudio built with JACK support?")


class ComputeCollector:
    """Every processor call's compute time over a long run.

    The engine keeps only its last 4096 calls in a ring (65 s at a 16 ms stride), so a 10-minute run
    would report percentiles of its last minute; this thread copies the new ring entries every
    ``interval`` s (well inside one ring's span) so the percentiles cover the whole run.
    """

    def __init__(self, engine: Any, interval: float = 2.0) -> None:
        self.engine = engine
        self.interval = interval
        self.start_count = engine.compute_count
        self._seen = self.start_count
        self._chunks: list[np.ndarray] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="compute-collector", daemon=True)

    def _collect(self) -> None:
        ring = self.engine._compute_times  # read-only peek; the worker is the single writer
        count = self.engine.compute_count
        new = min(count - self._seen, len(ring))
        if new > 0:
            idx = np.arange(count - new, count) % len(ring)
            self._chunks.append(ring[idx].copy())
        self._seen = count

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._collect()

    def __enter__(self) -> ComputeCollector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._collect()

    def seconds(self) -> np.ndarray:
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(
    make_processor: Any, server: str, seconds: float, blocksize: int, margin_ms: float, backend: str,
    params: Any = None,
) -> dict[str, Any]:
    from realtime.audio import LiveSession
    from realtime.jackserver import ProbeProcess, find_arrivals

    device = _jack_device()
    session = LiveSession(
        make_processor, input=device, output=device, blocksize=blocksize, channels=1, margin_ms=margin_ms,
        params=params,
    )
    with session, ProbeProcess(server) as probe:  # the probe in its own process, as a real source would be
        probe.connect()
        rate = probe.samplerate
        time.sleep(0.3)  # let the stream settle before counting
        engine = session.engine
        dropouts0, xruns0 = engine.dropouts, engine.xruns
        pulse = (0.5 * np.hanning(34)[1:-1]).astype(np.float32)
        period = int(PULSE_PERIOD_S * rate)
        starts = list(range(period // 4, int(seconds * rate) - period, period))
        signal = np.zeros(int(seconds * rate), np.float32)
        for s in starts:
            signal[s : s + len(pulse)] += pulse
        cpu0, wall0 = _cpu_seconds(), time.perf_counter()
        with ComputeCollector(engine) as collector:
            recorded = probe.play_and_record(signal)
        cpu_s, wall_s = _cpu_seconds() - cpu0, time.perf_counter() - wall0
        dropouts, xruns = engine.dropouts - dropouts0, engine.xruns - xruns0
        delays = np.array([find_arrivals(recorded, pulse, s + period // 2, period // 2) - s for s in starts])
        compute = collector.seconds() * 1000.0
        stride_ms = 1000.0 * engine.processors[0].stride / engine.model_rate
        latency = engine.latency
        delays_ms = delays * 1000.0 / rate
        return {
            "end_to_end_latency_ms": float(np.median(delays_ms)),
            "end_to_end_latency_spread_ms": float(np.ptp(delays_ms)),
            "reported_latency_ms": latency.total_ms,
            "algorithmic_latency_ms": latency.algorithmic_ms,
            "device_latency_ms": 1000.0 * (latency.device_input + latency.device_output) / rate,
            "compute_ms_p50": _pct(compute, 50),
            "compute_ms_p99": _pct(compute, 99),
            "compute_ms_max": float(compute.max()) if len(compute) else 0.0,
            "compute_calls": len(compute),
            "stride_ms": stride_ms,
            "rtf": float(np.mean(compute) / stride_ms) if len(compute) else 0.0,
            "dropouts": dropouts,
            "xruns": xruns,
            # The engine's whole process (worker + PortAudio callback; the probe runs in its own process).
            # 100 = one core busy.
            "cpu_percent": 100.0 * cpu_s / wall_s if wall_s > 0 else 0.0,
            "probe": "own process",
            "worker_realtime_priority": engine.realtime_priority,
            "pulses": len(starts),
            "seconds": seconds,
            "blocksize": blocksize,
            "sample_rate": rate,
            "backend": backend,
            # The passthrough ignores steps and strength: None rather than figures it never used.
            "steps": None if backend == "dsp-passthrough" else engine.params.steps,
            "strength": None if backend == "dsp-passthrough" else engine.params.strength,
            "device_name": session.device_name,
            "pulse_delays_ms": [round(float(d), 4) for d in delays_ms],
        }


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else 0.0


def write_json(path: Path, result: dict[str, Any]) -> None:
    """Atomic write: a temp file beside the target, then rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise StylehostError(f"cannot write {path}: {exc}") from exc
