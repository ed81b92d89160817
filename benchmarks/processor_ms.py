"""Per-call ms of a bundle's processor (ModelProcessor; StreamingProcessor for a streaming bundle) at its defaults.

    python -m benchmarks.processor_ms models/default [OTHER_BUNDLE ...]
    python -m benchmarks.processor_ms --excitation both --seconds 20 --out benchmarks/results/processor_ms M
    (M: a bundle, e.g. models/default)

ONNX Runtime CPU, 1 thread; ``--seconds`` (4) of a test tone, window by window as the engine calls it (the
first 20 calls left out). Used to check that a bundle's resynth graph (e.g. the learned stage of
docs/guidediff.md) keeps the whole call within the stride.

``--excitation``: ``bundle`` (default) runs what the bundle's manifest asks for; ``on`` forces the harmonic
excitation (diffusion/excitation.py, default config, as ``--harmonic`` does live), ``off`` turns it off;
``both`` runs one processor of each, interleaved call by call on the same windows (alternating which
goes first), so a shared, loaded machine slows both alike and the difference is the excitation's. With the
excitation on, ``exc_*`` is the time of the excitation inside the call (the generator over the call's
hops, window shift and framing: ``ModelProcessor._excite``). ``graph_p50_ms`` splits the call (first mode)
into its ONNX graphs (frontend, denoiser, resynth: the sum of each graph's runs within the call) and the rest
(excitation, window handling, overlap-add, Python): what a call costs at any emit, and what one more frame
per call adds. ``--side-thread`` (``on`` by default, as the engine plays): the excitation made on a side thread
while the denoiser runs, where only the stage reads it (realtime/side_task.py); ``off`` in line; ``both`` one
processor each way, interleaved as ``--excitation both``. ``--ab``: the named bundles (of one stride), each at its
defaults, interleaved the same way: two exports of one model compared call for call. ``--gap-ms G`` pauses G ms
after every call (``--gap sleep`` or ``spin``), as the live worker waits between strides: a vCPU that sleeps
wakes cold. ``--out PREFIX`` writes
PREFIX.json and PREFIX.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from diffusion.errors import StylehostError
from diffusion.excitation import ExcitationConfig
from diffusion.files import write_json_and_markdown
from export.bundle import load_bundle
from realtime.backends.base import Backend
from realtime.backends.choose import open_backend
from realtime.model_processor import BUNDLE_EXCITATION, ModelProcessor
from realtime.stream_processor import make_processor

MODES = ("bundle", "on", "off", "both")
SIDE_MODES = ("on", "off", "both")
WARMUP = 20  # calls left out of the statistics (ORT's first runs, caches)


def _make(path: str, excitation: str, call: dict[str, float] | None = None, side_thread: bool = True
          ) -> ModelProcessor:
    """The bundle's processor at its defaults; with ``call``, its backend's graph calls timed into it."""
    bundle = load_bundle(path)
    exc: dict[str, Any] | None | str = {"bundle": BUNDLE_EXCITATION, "on": ExcitationConfig().to_dict(),
                                        "off": None}[excitation]
    backend = open_backend(bundle, "cpu")
    if call is not None:
        _timed_graphs(backend, call)
    proc = make_processor(bundle, backend, emit=int(bundle.defaults["emit"]), excitation=exc, side_thread=side_thread)
    proc.set_params(style_mix={bundle.styles[0]: 1.0}, strength=bundle.defaults["strength"],
                    steps=bundle.defaults["steps"])
    return proc


def _timed_excite(proc: ModelProcessor, times: list[float]) -> None:
    """Wrap the instance's ``_excite`` so the excitation's own share of each call is recorded."""
    inner = proc._excite

    def timed(window: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        result = inner(window)
        times.append(1000.0 * (time.perf_counter() - t0))
        return result

    proc._excite = timed  # type: ignore[method-assign]


def _timed_graphs(backend: Backend, call: dict[str, float]) -> None:
    """Wrap a backend, before a processor binds its graphs, so each graph's wall time within the current call
    adds up in ``call``: ``run_all`` (``run`` goes through it) and every call ``bind`` returns."""
    inner, inner_bind = backend.run_all, backend.bind

    def add(name: str, t0: float) -> None:
        call[name] = call.get(name, 0.0) + 1000.0 * (time.perf_counter() - t0)

    def timed(name: str, *inputs: np.ndarray) -> Any:
        t0 = time.perf_counter()
        result = inner(name, *inputs)
        add(name, t0)
        return result

    def timed_bind(name: str, inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> Callable[[], None]:
        bound = inner_bind(name, inputs, outputs)

        def run() -> None:
            t0 = time.perf_counter()
            bound()
            add(name, t0)
        return run

    backend.run_all = timed  # type: ignore[method-assign]
    backend.bind = timed_bind  # type: ignore[method-assign]


def _stats(times: list[float]) -> dict[str, float]:
    kept = np.array(times[WARMUP:])
    return {"p50_ms": float(np.median(kept)), "p99_ms": float(np.percentile(kept, 99)),
            "mean_ms": float(np.mean(kept))}


def _pause(gap_s: float, how: str) -> None:
    """Between two calls, as the live worker waits for its next stride: asleep, or polling (EngineConfig.spin_ms)."""
    if how == "sleep":
        time.sleep(gap_s)
        return
    from realtime.worker import spin

    spin(gap_s)


def processor_ms(path: str, seconds: float = 4.0, excitation: str = "bundle", side_thread: str = "on",
                 gap_ms: float = 0.0, gap: str = "sleep") -> dict[str, Any]:
    """{mode: {p50_ms, p99_ms, mean_ms[, exc_p50_ms, ...]}} plus the stride, latency and call count; ``gap_ms``:
    a pause after every call, slept or polled (``gap``)."""
    if excitation == "both" and side_thread == "both":
        raise StylehostError("compare one thing at a time: --excitation both or --side-thread both")
    side = side_thread != "off"
    plan = ({"off": ("off", side), "on": ("on", side)} if excitation == "both" else
            {"in line": (excitation, False), "side thread": (excitation, True)} if side_thread == "both" else
            {excitation: (excitation, side)})
    modes = tuple(plan)
    call: dict[str, float] = {}  # the first mode's graph times within the current call
    procs = {m: _make(path, plan[m][0], call if i == 0 else None, plan[m][1]) for i, m in enumerate(modes)}
    times: dict[str, list[float]] = {m: [] for m in modes}
    exc_times: dict[str, list[float]] = {m: [] for m in modes}
    for m, proc in procs.items():
        if proc._excitation is not None:
            _timed_excite(proc, exc_times[m])
    first = procs[modes[0]]
    graph_times: dict[str, list[float]] = {}
    t = np.arange(int(first.sample_rate * seconds)) / first.sample_rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(0).standard_normal(len(t)))
    x = x.astype(np.float32)
    stride = first.stride
    window, out = np.zeros(first.window, np.float32), np.zeros(stride, np.float32)
    for c, i in enumerate(range(0, len(x) - stride, stride)):
        window[:-stride] = window[stride:]
        window[-stride:] = x[i : i + stride]
        order = modes if c % 2 == 0 else modes[::-1]
        for m in order:
            call.clear()
            t0 = time.perf_counter()
            procs[m].process(window, out)
            times[m].append(1000.0 * (time.perf_counter() - t0))
            if m == modes[0]:
                for name, ms in call.items():
                    graph_times.setdefault(name, []).append(ms)
            if gap_ms > 0.0:
                _pause(gap_ms / 1000.0, gap)
    result: dict[str, Any] = {"stride_ms": 1000.0 * stride / first.sample_rate, "gap_ms": gap_ms, "gap": gap,
                              "latency_ms": 1000.0 * first.delay_samples / first.sample_rate,
                              "calls": len(times[modes[0]]) - WARMUP}
    for m in modes:
        result[m] = _stats(times[m])
        # compute per emitted frame and the real-time factor (call time / stride): what issue 17 asks for
        result[m]["ms_per_frame_p50"] = result[m]["p50_ms"] / first.S
        result[m]["rtf_p50"] = result[m]["p50_ms"] / result["stride_ms"]
        if exc_times[m]:
            result[m].update({f"exc_{k}": v for k, v in _stats(exc_times[m]).items()})
    # a graph that ran only in the warm-up calls (a condition graph, once per style) is not a per-call part
    graphs = {name: float(np.median(v[WARMUP:])) for name, v in graph_times.items() if len(v) > WARMUP}
    result["graph_p50_ms"] = {**graphs, "rest": result[modes[0]]["p50_ms"] - sum(graphs.values())}
    result["precision"] = getattr(first.backend, "precision", "")
    result["modes"] = list(modes)
    return result


def ab_ms(paths: Sequence[str], seconds: float = 4.0) -> dict[str, Any]:
    """Bundles of one stride played call by call on the same windows, alternating which goes first, so a shared,
    loaded machine slows them alike: {path: {p50_ms, p99_ms, mean_ms}} and the stride."""
    procs = {path: _make(path, "bundle") for path in paths}
    strides = {proc.stride for proc in procs.values()}
    if len(strides) != 1:
        raise StylehostError(f"--ab compares bundles of one stride; these have {sorted(strides)} samples")
    first = next(iter(procs.values()))
    t = np.arange(int(first.sample_rate * seconds)) / first.sample_rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(0).standard_normal(len(t)))
    x = x.astype(np.float32)
    stride = first.stride
    windows = {path: np.zeros(proc.window, np.float32) for path, proc in procs.items()}
    out = np.zeros(stride, np.float32)
    times: dict[str, list[float]] = {path: [] for path in paths}
    for c, i in enumerate(range(0, len(x) - stride, stride)):
        for path in paths if c % 2 == 0 else paths[::-1]:
            window = windows[path]
            window[:-stride] = window[stride:]
            window[-stride:] = x[i : i + stride]
            t0 = time.perf_counter()
            procs[path].process(window, out)
            times[path].append(1000.0 * (time.perf_counter() - t0))
    result: dict[str, Any] = {"stride_ms": 1000.0 * stride / first.sample_rate, "calls": len(times[paths[0]]) - WARMUP}
    for path in paths:
        result[path] = {**_stats(times[path]), "rtf_p50": float(np.median(times[path][WARMUP:])) / result["stride_ms"]}
    return result


def _ab_line(r: dict[str, Any], paths: Sequence[str]) -> str:
    return "interleaved, " + "; ".join(
        f"{p}: p50 {r[p]['p50_ms']:.3f} ms, p99 {r[p]['p99_ms']:.3f} ms, rtf {r[p]['rtf_p50']:.2f}" for p in paths
    ) + f" per call of {r['stride_ms']:.1f} ms; {r['calls']} calls each"


def _line(path: str, r: dict[str, Any]) -> str:
    stage = load_bundle(path).manifest.get("resynth_stage")
    what = f"learned stage, {stage['steps']} step(s)" if stage else "source-phase resynthesis"
    parts = []
    for m in r.get("modes", MODES):
        if m in r:
            s = r[m]
            exc = (f" (excitation p50 {s['exc_p50_ms']:.3f}, p99 {s['exc_p99_ms']:.3f})"
                   if "exc_p50_ms" in s else "")
            parts.append(f"{m}: p50 {s['p50_ms']:.3f} ms, p99 {s['p99_ms']:.3f} ms{exc}, "
                         f"{s['ms_per_frame_p50']:.3f} ms per frame, rtf {s['rtf_p50']:.2f}")
    split = ", ".join(f"{name} {ms:.3f}" for name, ms in r["graph_p50_ms"].items())
    pause = f", {r['gap_ms']:g} ms {r['gap']} after each call" if r.get("gap_ms") else ""
    return (f"{path} ({what}{pause}): " + "; ".join(parts) + f" per call of {r['stride_ms']:.1f} ms; "
            f"latency {r['latency_ms']:.1f} ms; {r['calls']} calls; p50 ms by part: {split}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.processor_ms", description=__doc__.split("\n")[0])
    p.add_argument("bundles", nargs="+")
    p.add_argument("--excitation", choices=MODES, default="bundle")
    p.add_argument("--side-thread", choices=SIDE_MODES, default="on",
                   help="the excitation on a side thread beside the denoiser where only the stage reads it "
                        "(realtime/side_task.py; default on); both: one processor each way, interleaved")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--gap-ms", type=float, default=0.0,
                   help="pause this long after every call, as the live worker waits for its next stride (default 0: "
                        "calls back to back)")
    p.add_argument("--gap", choices=("sleep", "spin"), default="sleep",
                   help="how the pause passes: asleep, or polling as EngineConfig.spin_ms does")
    p.add_argument("--ab", action="store_true",
                   help="the bundles (one stride) interleaved call by call on the same windows, at their defaults")
    p.add_argument("--out", default=None, help="write PREFIX.json and PREFIX.md")
    args = p.parse_args(argv)
    results, lines = {}, []
    if args.ab:
        results["ab"] = ab_ms(args.bundles, args.seconds)
        lines.append(_ab_line(results["ab"], args.bundles))
        print(lines[-1])
    for path in [] if args.ab else args.bundles:
        r = processor_ms(path, args.seconds, args.excitation, args.side_thread, args.gap_ms, args.gap)
        results[path] = r
        lines.append(_line(path, r))
        print(lines[-1])
    if args.out:
        write_report(args.out, "benchmarks.processor_ms", argv, results, lines)
    return 0


def write_report(prefix: str, module: str, argv: list[str], results: Any, lines: list[str]) -> None:
    """PREFIX.json (the command, the host and ``results``) and PREFIX.md (the command and one bullet per line)."""
    command = f"python -m {module} " + " ".join(argv)
    meta = {"command": command, "host": f"{platform.machine()} {platform.system()}",
            "python": platform.python_version(), "numpy": np.__version__}
    write_json_and_markdown(Path(prefix), {"meta": meta, "results": results},
                            f"`{command}`\n\n" + "\n".join(f"- {ln}" for ln in lines) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
