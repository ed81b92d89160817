"""`stylehost bench latency`: measure end-to-end latency through a real audio server, not compute it.

A JACK-Client probe plays Hann pulses (short bursts whose onsets survive restyling) into the live
engine's PortAudio inputs and records its output; each pulse's arrival is the cross-correlation
peak, so the measured latency includes PortAudio's and JACK's buffers as well as the engine's.
Uses the JACK server named by --server or JACK_DEFAULT_SERVER when one is running, else starts a
private dummy-driver server (no sound card needed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from diffusion.errors import StylehostError

JACK_HOSTAPI = "JACK Audio Connection Kit"
PULSE_PERIOD_S = 0.2  # pulse spacing: longer than any latency we could measure, so no ambiguity


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=20.0, help="how long to stream pulses")
    p.add_argument("--json", default=None, help="write the results here (JSON)")
    p.add_argument("--blocksize", type=int, default=256, help="PortAudio callback block (and JACK period)")
    p.add_argument("--server", default=None, help="JACK server name (default: JACK_DEFAULT_SERVER or private)")
    p.add_argument("--samplerate", type=int, default=48000, help="rate of a private JACK server")
    p.add_argument("--model", default=None, help="model bundle; none = DSP passthrough")
    p.add_argument("--backend", default="auto", help="inference backend for --model")
    p.add_argument("--margin-ms", type=float, default=4.0, help="engine compute margin")
    p.add_argument("--style", default="violin", help="target style while measuring")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's recommended)")
    p.add_argument("--strength", type=float, default=None, help="transfer strength (default: the model's)")


def cli_latency(args: argparse.Namespace) -> int:
    from realtime.commands import PASSTHROUGH_NOTICE, ModelFactory, params_from_args, processor_factory

    factory, passthrough = processor_factory(args.model, args.backend)
    args.wet = 1.0
    params = params_from_args(args, factory)
    if passthrough:
        print(PASSTHROUGH_NOTICE)
    result = measure_latency(
        factory,
        seconds=args.seconds,
        blocksize=args.blocksize,
        server=args.server,
        samplerate=args.samplerate,
        margin_ms=args.margin_ms,
        backend=factory.backend.name if isinstance(factory, ModelFactory) else "dsp-passthrough",
        params=params,
    )
    for key, value in result.items():
        print(f"{key:>26}: {value:.3f}" if isinstance(value, float) else f"{key:>26}: {value}")
    if args.json:
        _write_json(Path(args.json), result)
    return 0


def measure_latency(
    make_processor: Any,
    seconds: float = 20.0,
    blocksize: int = 256,
    server: str | None = None,
    samplerate: int = 48000,
    margin_ms: float = 4.0,
    backend: str = "dsp-passthrough",
    params: Any = None,
) -> dict[str, Any]:
    """Run the live engine on a JACK server and return the measured figures (see module doc)."""
    from realtime.jackserver import JackServer, reinit_portaudio, server_running

    name = server or os.environ.get("JACK_DEFAULT_SERVER") or "default"
    if shutil.which("jackd") is None and not _quiet_running(server_running, name):
        raise StylehostError(
            "no audio server to measure through: no JACK server running, no `jackd` to start one, "
            "and no sound card is assumed (install jackd2 or start JACK)"
        )
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


def _measure(
    make_processor: Any, server: str, seconds: float, blocksize: int, margin_ms: float, backend: str,
    params: Any = None,
) -> dict[str, Any]:
    from realtime.audio import LiveSession
    from realtime.jackserver import LoopbackProbe, find_arrivals

    device = _jack_device()
    session = LiveSession(
        make_processor, input=device, output=device, blocksize=blocksize, channels=1, margin_ms=margin_ms,
        params=params,
    )
    with session, LoopbackProbe(server) as probe:
        probe.connect()
        rate = probe.client.samplerate
        time.sleep(0.3)  # let the stream settle before counting
        engine = session.engine
        dropouts0, xruns0 = engine.dropouts, engine.xruns
        pulse = (0.5 * np.hanning(34)[1:-1]).astype(np.float32)
        period = int(PULSE_PERIOD_S * rate)
        starts = list(range(period // 4, int(seconds * rate) - period, period))
        signal = np.zeros(int(seconds * rate), np.float32)
        for s in starts:
            signal[s : s + len(pulse)] += pulse
        recorded = probe.play_and_record(signal)
        delays = np.array([find_arrivals(recorded, pulse, s + period // 2, period // 2) - s for s in starts])
        compute = engine.compute_times() * 1000.0
        stride_ms = 1000.0 * engine.processors[0].stride / engine.model_rate
        latency = engine.latency
        return {
            "end_to_end_latency_ms": float(np.median(delays) * 1000.0 / rate),
            "end_to_end_latency_spread_ms": float(np.ptp(delays) * 1000.0 / rate),
            "reported_latency_ms": latency.total_ms,
            "algorithmic_latency_ms": latency.algorithmic_ms,
            "device_latency_ms": 1000.0 * (latency.device_input + latency.device_output) / rate,
            "compute_ms_p50": float(np.percentile(compute, 50)) if len(compute) else 0.0,
            "compute_ms_p99": float(np.percentile(compute, 99)) if len(compute) else 0.0,
            "rtf": float(np.mean(compute) / stride_ms) if len(compute) else 0.0,
            "dropouts": engine.dropouts - dropouts0,
            "xruns": engine.xruns - xruns0,
            "worker_realtime_priority": engine.realtime_priority,
            "pulses": len(starts),
            "seconds": seconds,
            "blocksize": blocksize,
            "sample_rate": rate,
            "backend": backend,
            "steps": engine.params.steps,
            "strength": engine.params.strength,
            "device_name": session.device_name,
        }


def _write_json(path: Path, result: dict[str, Any]) -> None:
    """Atomic write: a temp file beside the target, then rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise StylehostError(f"cannot write {path}: {exc}") from exc
