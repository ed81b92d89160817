"""`stylehost bench latency`: measure end-to-end latency through a real audio server, not compute it.

A JACK-Client probe, in its own process as a real source would be (``ProbeProcess``), plays Hann
pulses (short bursts whose onsets survive restyling) into the live engine's PortAudio inputs and
records its output; each pulse's arrival is the cross-correlation peak, so the measured latency
includes PortAudio's and JACK's buffers as well as the engine's.
Uses the JACK server named by --server, which must be running (a name that does not answer is one
error line naming the servers that do), else JACK_DEFAULT_SERVER when it is running, else starts a
private dummy-driver server per block size (its period = the block size; no sound card needed).

One run per backend x block size x steps (``--backend cpu,torch --blocksize 128,256 --steps 1,2``).
``--find-blocksize`` instead tries 64, 128, 256, ... and stops at the first block size that streams
``--seconds`` (60 by default) with zero dropouts. JSON layout (``--json``): one run is a flat object
with the issue's keys (``end_to_end_latency_ms``, ``algorithmic_latency_ms``, ``compute_ms_p50``,
``compute_ms_p99``, ``rtf``, ``dropouts``, ``backend``, ``device_name``, ...); several runs are
``{"runs": [...]}``; a search is ``{"find_blocksize": [...]}``; each file also has ``machine``.

No pulse back is a failed measurement, never a figure: a run in which not one pulse came back (a model
that outputs silence, one too slow to deliver anything: ``--steps 4`` on a small CPU) gets an ``error``
and no ``*_latency_ms`` key at all (its dropouts, xruns and compute figures stay, they say why); the
JSON is still written, so the other runs' figures survive, and the command then ends with one line
``stylehost: error: ...`` and exit 2. Pulses that did not come back are never counted as a delay:
``pulse_delays_ms`` holds the ``pulses_found`` of ``pulses`` that did, and the median is theirs.
A search fails the same way when no block size it tried brought a pulse back.

A model the load governor took off is no model figure either: when the governor played the dry line (which runs
at the same latency, realtime/governor.py) for more than 1% of a run's strides, the pulses timed the engine's
path and not the model, so the run gets an ``error``, its pulses' median only as ``dry_line_latency_ms``, and
the command ends with exit 2 as above. Every run reports ``dry_strides`` and ``model_share`` (the share of
strides the model played). ``--no-governor`` keeps the model playing whatever its load: the model's own
latency and dropouts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
from export.bundle import DEFAULT_MARGIN_MS
from realtime.argtypes import ranged_float, ranged_int, ranged_int_list
from realtime.resample import FIR_PHASES, QUALITY

JACK_HOSTAPI = "JACK Audio Connection Kit"
PULSE_PERIOD_S = 0.2  # pulse spacing: longer than any latency we could measure, so no ambiguity
PULSE = (0.5 * np.hanning(34)[1:-1]).astype(np.float32)  # 32 samples, a click whose onset survives restyling
# --trace: which run a trace belongs to (copied from the run's figures)
TRACE_RUN_KEYS = ("backend", "model", "blocksize", "sample_rate", "seconds", "steps", "strength", "stride_ms",
                  "dropouts", "xruns", "compute_calls", "cpu_percent", "end_to_end_latency_ms")
SEARCH_BLOCKSIZES = (64, 128, 256, 512, 1024, 2048, 4096)
FIND_SECONDS = 60.0
MAX_DRY_SHARE = 0.01  # a run whose model played fewer strides than 99% is not a measurement of the model
# Block sizes a PortAudio callback and a JACK period can take here; the private server's period is the block.
BLOCKSIZE_RANGE = (16, 8192)
MIN_SECONDS = 0.5  # two pulses (see _pulse_starts): a spread needs two
MAX_SECONDS = 3600.0  # the signal and its recording are held in memory: 2 x 691 MB at 48 kHz


def _pulse_starts(seconds: float, rate: int) -> list[int]:
    """Where the pulses start: every PULSE_PERIOD_S from a quarter period in, each followed by a full period
    of recording (48 kHz, 0.5 s: period 9600, starts 2400 and 12000; the last arrival window ends at 21600)."""
    period = int(PULSE_PERIOD_S * rate)
    return list(range(period // 4, int(seconds * rate) - period, period))


def add_arguments(p: argparse.ArgumentParser) -> None:
    from realtime.commands import PRECISIONS, add_callback_arguments

    blocks = ranged_int_list(*BLOCKSIZE_RANGE)
    # audit: bench-latency-seconds-range
    p.add_argument("--seconds", type=ranged_float(MIN_SECONDS, MAX_SECONDS), default=None,
                   help=f"how long to stream pulses per run, {MIN_SECONDS:g} to {MAX_SECONDS:g} (default 20; "
                        f"{FIND_SECONDS:g} with --find-blocksize)")
    p.add_argument("--json", default=None, help="write the results here (JSON)")
    p.add_argument("--trace", default=None, metavar="FILE",
                   help="also record every processor call (wall, worker CPU, wait, faults, parts) and classify the "
                        "late ones (realtime/calltrace.py); writes them here (JSON)")
    p.add_argument("--blocksize", type=blocks, default="256",
                   help=f"PortAudio callback block (and JACK period), {BLOCKSIZE_RANGE[0]} to {BLOCKSIZE_RANGE[1]}; "
                        "a list ('128,256') measures each")
    p.add_argument("--find-blocksize", action="store_true",
                   help="find the smallest block size (64, 128, 256, ...) with zero dropouts over --seconds")
    p.add_argument("--max-blocksize", type=ranged_int(*BLOCKSIZE_RANGE), default=SEARCH_BLOCKSIZES[-1],
                   help="where --find-blocksize gives up")
    p.add_argument("--server", default=None, help="JACK server name, which must be running (default: "
                                                  "JACK_DEFAULT_SERVER when running, else a private one)")
    p.add_argument("--samplerate", type=ranged_int(8000, 192000), default=48000, help="rate of a private JACK server")
    p.add_argument("--model", default=None, help="model bundle; 'passthrough' = DSP stand-in (default: "
                                                  "models/default when it exists)")
    p.add_argument("--backend", default="auto", help="inference backend(s) for --model; a list ('cpu,torch') "
                                                     "measures each")
    p.add_argument("--margin-ms", type=ranged_float(0.0, 100.0), default=None,
                   help="engine compute margin, 0 to 100 (default: the bundle's recommended one, else 6)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="the denoiser's precision: int8 on the CPU backend, fp16 on torch-cuda (auto: int8 when the "
                        "bundle has it on the CPU, fp16 where parity allows on torch-cuda)")
    add_callback_arguments(p)
    p.add_argument("--governor", action=argparse.BooleanOptionalAction, default=True,
                   help="the engine's load governor, as live (default); --no-governor keeps the model playing "
                        "whatever its load, to measure the model itself: a run whose governor played the dry line "
                        f"for more than {MAX_DRY_SHARE * 100:.0f}%% of its strides is an error, not a model figure")
    p.add_argument("--resampler", choices=tuple(FIR_PHASES), default=QUALITY,
                   help="the engine's device <-> model rate resamplers: fir-min (default, minimum phase, about 3 "
                        "samples of delay each way at 48 kHz) or fir (linear phase, 42 samples each way)")
    p.add_argument("--style", default="violin", help="target style while measuring")
    p.add_argument("--steps", type=ranged_int_list(1, 64), default=None,
                   help="sampling steps, 1 to 64 (default: the model's recommended); a list ('1,2,4') measures each")
    p.add_argument("--strength", type=ranged_float(0.0, 1.0, lo_open=True), default=None,
                   help="transfer strength in (0, 1] (default: the model's)")


def cli_latency(args: argparse.Namespace) -> int:
    from benchmarks.machine import machine_info
    from realtime.commands import PASSTHROUGH_NOTICE, ModelFactory, params_from_args, processor_factory

    blocksizes: list[int] = args.blocksize  # a list, ranges checked by the parser
    require_audio_server(args.server)  # before loading any model: no server is one line, nothing else
    if args.trace and args.find_blocksize:
        raise StylehostError("--trace records the runs of --blocksize; it does not combine with --find-blocksize")
    steps_list: list[int | None] = list(args.steps) if args.steps is not None else [None]
    seconds = args.seconds if args.seconds is not None else (FIND_SECONDS if args.find_blocksize else 20.0)
    runs: list[dict[str, Any]] = []
    errors: list[str] = []  # backends that could not run
    failed: list[str] = []  # runs that ran but measured nothing (no pulse came back)
    traces: list[dict[str, Any]] = []  # --trace: one per measured run
    for backend_name in parse_list(args.backend, str, "backend"):
        try:
            factory, passthrough = processor_factory(args.model, backend_name, precision=args.precision)
        except StylehostError as exc:  # one backend missing must not lose the others' figures
            errors.append(f"{backend_name}: {exc}")
            runs.append({"backend": backend_name, "error": str(exc)})
            print(f"{backend_name}: skipped: {exc}")
            continue
        if passthrough:
            print(PASSTHROUGH_NOTICE)
        margin_ms = args.margin_ms
        if margin_ms is None:  # the bundle's recommended margin (Bundle.margin_ms), the engine's default else
            margin_ms = factory.bundle.margin_ms if isinstance(factory, ModelFactory) else DEFAULT_MARGIN_MS
        if isinstance(factory, ModelFactory):
            backend, model = factory.backend.name, f"{factory.bundle.name} {factory.bundle.version}"
            model += f" ({getattr(factory.backend, 'precision', 'fp32')} denoiser)"
        else:
            backend, model = "dsp-passthrough", "passthrough"
        for steps in steps_list[:1] if passthrough else steps_list:  # the passthrough has no sampler
            params = params_from_args(argparse.Namespace(**{**vars(args), "steps": steps, "wet": 1.0}), factory)
            common = dict(seconds=seconds, server=args.server, samplerate=args.samplerate, margin_ms=margin_ms,
                          backend=backend, params=params, callback_process=args.callback_process,
                          pin_cpus=args.pin_cpus, governor=args.governor, resampler=args.resampler,
                          spin_ms=args.spin_ms)
            if args.find_blocksize:
                search = {**find_blocksize(factory, max_blocksize=args.max_blocksize, say=print, **common),
                          "model": model}
                runs.append(search)
                if "error" in search:
                    failed.append(f"{backend}, block search: {search['error']}")
                continue
            for blocksize in blocksizes:
                result = {**measure_latency(factory, blocksize=blocksize, trace=bool(args.trace), **common),
                          "model": model}
                if "call_trace" in result:
                    trace = result.pop("call_trace")
                    traces.append({**{k: result.get(k) for k in TRACE_RUN_KEYS}, **trace})
                    _print_trace(trace)
                _print(result)
                runs.append(result)
                if "error" in result:
                    failed.append(f"{backend}, block {blocksize}: {result['error']}")
        if passthrough:
            break  # the passthrough ignores the backend: measuring it again per backend adds nothing
    if len(errors) == len(runs):
        raise StylehostError("no backend could run: " + "; ".join(errors))
    if args.json:
        if args.find_blocksize:
            out: dict[str, Any] = {"find_blocksize": runs}
        else:
            out = dict(runs[0]) if len(runs) == 1 else {"runs": runs}
        out["machine"] = machine_info()
        write_json(Path(args.json), out)
        print(f"wrote {args.json}")
    if args.trace and traces:
        trace_out: dict[str, Any] = dict(traces[0]) if len(traces) == 1 else {"runs": traces}
        trace_out["options"] = {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, list))}
        trace_out["machine"] = machine_info()
        write_json(Path(args.trace), trace_out, compact_lists=True)
        print(f"wrote {args.trace}")
    if failed:  # after the JSON: the runs that did measure keep their figures  # audit: no-pulse-fails-the-command
        raise StylehostError("; ".join(failed) + (f" (recorded as errors in {args.json})" if args.json else ""))
    return 0


def _print_trace(trace: dict[str, Any]) -> None:
    s = trace["over_stride"]
    classes = ", ".join(f"{k} {v}" for k, v in s["classes"].items())
    print(f"call trace: {s['late']} of {s['calls']} calls over the {s['budget_ms']:g} ms stride ({classes}; "
          f"waiting: {s['waiting_preempted']} preempted, {s['waiting_blocked']} blocked); "
          f"wall p99 {s['all']['wall']['p99_ms']:.2f} ms, cpu p99 {s['all']['cpu']['p99_ms']:.2f} ms, "
          f"wait p99 {s['all']['wait']['p99_ms']:.2f} ms")


def _print(result: dict[str, Any]) -> None:
    for key, value in result.items():
        if key == "latency_budget":
            print(f"{'latency budget':>28}: " + ", ".join(f"{r['term']} {r['ms']:.2f}" for r in value) + " ms")
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
        measured = (f"end-to-end {result['end_to_end_latency_ms']:.2f} ms" if "error" not in result
                    else result["error"].split(":")[0])
        say(f"block {blocksize:>5}: {result['dropouts']} dropouts, {result['xruns']} xruns, {measured}, "
            f"compute p99 {result['compute_ms_p99']:.2f} ms, rtf {result['rtf']:.3f} over {seconds:g} s")
        if result["dropouts"] == 0 and "error" not in result:  # silence without dropouts is no pass
            smallest = blocksize
            break
        blocksize *= 2
    say(f"smallest block size with zero dropouts over {seconds:g} s: {smallest if smallest else 'none'}"
        + ("" if smallest else f" up to {max_blocksize}"))
    first = tried[0] if tried else {}
    search = {"backend": first.get("backend", kwargs.get("backend")), "steps": first.get("steps"),
              "strength": first.get("strength"), "seconds": seconds, "smallest_blocksize": smallest,
              "end_to_end_latency_ms": tried[-1]["end_to_end_latency_ms"] if smallest else None, "tried": tried}
    if tried and all("error" in t for t in tried):
        blocks = ", ".join(str(t["blocksize"]) for t in tried)
        search["error"] = f"no pulse came back at any block size tried ({blocks})"
    return search


def measure_latency(
    make_processor: Any,
    seconds: float = 20.0,
    blocksize: int = 256,
    server: str | None = None,
    samplerate: int = 48000,
    margin_ms: float = 6.0,
    backend: str = "dsp-passthrough",
    params: Any = None,
    trace: bool = False,
    callback_process: bool = False,
    pin_cpus: bool = False,
    governor: bool = True,
    resampler: str = QUALITY,
    spin_ms: float = 0.0,
) -> dict[str, Any]:
    """Run the live engine on a JACK server and return the measured figures (see module doc); with ``trace``
    also ``call_trace``, every processor call recorded and the late ones classified (realtime/calltrace.py)."""
    from benchmarks.jackserver import JackServer, reinit_portaudio, server_running

    name = require_audio_server(server)
    if _quiet_running(server_running, name):
        old = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = name
        reinit_portaudio()
        try:
            return _measure(make_processor, name, seconds, blocksize, margin_ms, backend, params, trace,
                            callback_process, pin_cpus, governor, resampler, spin_ms)
        finally:
            if old is None:
                os.environ.pop("JACK_DEFAULT_SERVER", None)
            else:
                os.environ["JACK_DEFAULT_SERVER"] = old
            reinit_portaudio()
    with JackServer(rate=samplerate, period=blocksize) as srv:
        if pin_cpus:
            from realtime.worker import split_cpus

            srv.pin(split_cpus()[0])
        return _measure(make_processor, srv.name, seconds, blocksize, margin_ms, backend, params, trace,
                        callback_process, pin_cpus, governor, resampler, spin_ms)


def require_audio_server(server: str | None) -> str:
    """The JACK server name to measure through; one StylehostError line when there is none to use or start.

    A server named by the user (``--server``) must be running: measuring a private one instead would
    report figures of a server nobody asked about. The error names the servers that do answer.
    """
    from benchmarks.jackserver import running_servers, server_running

    if server is not None:  # audit: bench-named-server-must-run
        if _quiet_running(server_running, server):
            return server
        others = running_servers(exclude=server)
        found = f"running: {', '.join(map(repr, others))}" if others else "no other JACK server answers"
        raise StylehostError(f"JACK server {server!r} is not running ({found}); start it, name a running one, "
                             "or leave out --server to measure through a private dummy server")
    name = os.environ.get("JACK_DEFAULT_SERVER") or "default"
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


def _steal_seconds() -> float:
    """CPU time the hypervisor took from this VM, all CPUs together (/proc/stat 'steal'); 0 where unknown."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(
    make_processor: Any, server: str, seconds: float, blocksize: int, margin_ms: float, backend: str,
    params: Any = None, trace: bool = False, callback_process: bool = False, pin_cpus: bool = False,
    governor: bool = True, resampler: str = QUALITY, spin_ms: float = 0.0,
) -> dict[str, Any]:
    from benchmarks.jackserver import ProbeProcess
    from realtime.audio import LiveSession
    from realtime.calltrace import trace_report

    device = _jack_device()
    session = LiveSession(
        make_processor, input=device, output=device, blocksize=blocksize, channels=1, margin_ms=margin_ms,
        params=params, callback_process=callback_process, pin_cpus=pin_cpus, governor=governor,
        resample_quality=resampler, spin_ms=spin_ms,
    )
    call_trace = session.engine.enable_trace() if trace else None
    load0, steal0 = os.getloadavg(), _steal_seconds()
    with session, ProbeProcess(server) as probe:  # the probe in its own process, as a real source would be
        probe.connect()
        rate = probe.samplerate
        time.sleep(0.3)  # let the stream settle before counting
        engine = session.engine
        dropouts0, xruns0, dry0 = engine.dropouts, engine.xruns, engine.dry_strides
        period = int(PULSE_PERIOD_S * rate)
        starts = _pulse_starts(seconds, rate)
        if not starts:
            raise StylehostError(f"{seconds:g} s holds no pulse: measure at least {MIN_SECONDS:g} s")
        signal = np.zeros(int(seconds * rate), np.float32)
        for s in starts:
            signal[s : s + len(PULSE)] += PULSE
        cpu0, wall0 = _cpu_seconds(), time.perf_counter()
        traced0 = call_trace.count if call_trace is not None else 0
        with ComputeCollector(engine) as collector:
            recorded = probe.play_and_record(signal)
        cpu_s, wall_s = _cpu_seconds() - cpu0, time.perf_counter() - wall0
        traced1 = call_trace.count if call_trace is not None else 0
        dropouts, xruns = engine.dropouts - dropouts0, engine.xruns - xruns0
        dry = engine.dry_strides - dry0
        delays_ms = pulse_delays(recorded, starts, period) * 1000.0 / rate
        compute = collector.seconds() * 1000.0
        stride_ms = 1000.0 * engine.processors[0].stride / engine.model_rate
        latency = engine.latency
        found = delays_ms[np.isfinite(delays_ms)]
        figures = {
            "compute_ms_p50": _pct(compute, 50),
            "compute_ms_p99": _pct(compute, 99),
            "compute_ms_max": float(compute.max()) if len(compute) else 0.0,
            "compute_calls": len(compute),
            # strides the load governor played dry (no model call): their pulses came through the dry line
            "dry_strides": dry,
            "model_share": len(compute) / (len(compute) + dry) if len(compute) + dry else 0.0,
            "governor": governor,
            "resampler": resampler,
            "spin_ms": spin_ms,
            "stride_ms": stride_ms,
            "rtf": float(np.mean(compute) / stride_ms) if len(compute) else 0.0,
            "dropouts": dropouts,
            "xruns": xruns,
            # The engine's whole process (worker + PortAudio callback; the probe runs in its own process).
            # 100 = one core busy.
            "cpu_percent": 100.0 * cpu_s / wall_s if wall_s > 0 else 0.0,
            "probe": "own process",
            "callback": "own process" if callback_process else "worker's process",
            "worker_cpus": engine.pinned_cpus,
            "worker_realtime_priority": engine.realtime_priority,
            "pulses": len(starts),
            "pulses_found": len(found),
            "seconds": seconds,
            "blocksize": blocksize,
            "sample_rate": rate,
            "backend": backend,
            # The passthrough ignores steps and strength: None rather than figures it never used.
            "steps": None if backend == "dsp-passthrough" else engine.params.steps,
            "strength": None if backend == "dsp-passthrough" else engine.params.strength,
            "device_name": session.device_name,
        }
        if call_trace is not None:
            session.stop()  # the worker is joined: the records are complete and no longer written
            engine.disable_trace()
            figures["call_trace"] = {
                **trace_report(call_trace),
                # the calls made while the pulses played (the others: stream start-up and settling)
                "measured_calls": [traced0, traced1],
                "loadavg_before": [round(v, 2) for v in load0],
                "loadavg_after": [round(v, 2) for v in os.getloadavg()],
                "steal_s": round(_steal_seconds() - steal0, 3),  # all CPUs together, from /proc/stat
                "margin_ms": margin_ms,
                "worker_realtime_priority": engine.realtime_priority,
            }
        if not len(found):  # a failed measurement: an error and no latency figure at all (see module doc)
            return {"error": f"no pulse came back (0 of {len(starts)}; {dropouts} dropouts, rtf "
                             f"{figures['rtf']:.2f}): the output was silent or dropped, no latency measured",
                    **figures}
        if dry > MAX_DRY_SHARE * (len(compute) + dry):  # audit: bench-dry-is-no-figure
            # The dry line plays at the model's latency, so its pulses time the engine's path, not the model:
            # an error, and the figure only under a name that says whose it is.
            return {"error": f"the load governor played the dry line for {dry} of {len(compute) + dry} strides "
                             f"({100.0 * dry / (len(compute) + dry):.1f}%; model rtf {figures['rtf']:.2f}): the "
                             "model did not play, so no model latency was measured; measure the model itself "
                             "with --no-governor (its dropouts then count), or use fewer steps",
                    "dry_line_latency_ms": float(np.median(found)), **figures}
        return {
            "end_to_end_latency_ms": float(np.median(found)),
            "end_to_end_latency_spread_ms": float(np.ptp(found)),
            "reported_latency_ms": latency.total_ms,
            "algorithmic_latency_ms": latency.algorithmic_ms,
            "device_latency_ms": 1000.0 * (latency.device_input + latency.device_output) / rate,
            "latency_budget": latency.budget(),  # every term of reported_latency_ms (docs/live.md)
            **figures,
            "pulse_delays_ms": [round(float(d), 4) for d in found],
        }


def pulse_delays(recorded: np.ndarray, starts: list[int], period: int) -> np.ndarray:
    """Each pulse's delay in samples: its arrival searched within half a period either side of half a period
    after its start. NaN where no pulse came back (``find_arrivals``), never 0: a lost pulse is no delay."""
    from benchmarks.jackserver import find_arrivals

    return np.array([find_arrivals(recorded, PULSE, s + period // 2, period // 2) - s for s in starts], dtype=float)


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else 0.0


def write_json(path: Path, result: dict[str, Any], compact_lists: bool = False) -> None:
    """Atomic write: a temp file beside the target, then rename. ``compact_lists``: lists of numbers on one
    line each (a trace's records: 19 columns x thousands of calls, not one line per number)."""
    text = json.dumps(result, indent=2)
    if compact_lists:
        text = re.sub(r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]",
                      lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise StylehostError(f"cannot write {path}: {exc}") from exc
