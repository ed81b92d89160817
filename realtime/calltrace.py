"""Per-call trace of the worker: where each processor call's time went, and why a late one was late.

Thread: the worker writes (``CallTrace.begin``/``end``, once per stride, from realtime/worker.py); any
thread reads ``records()`` once the engine is stopped (a read while streaming may see the row being
written). Off by default: ``Engine.enable_trace()`` turns it on for one session (``stylehost bench
latency --trace FILE``), so the live path pays one ``is None`` test per block without it.

One record per processor call (``engine.compute_count`` calls, no more, no fewer), kept in a preallocated
structured numpy ring (65536 calls = 8.7 min at an 8 ms stride): recording writes into it in place and
keeps no per-call objects (the floats and the rusage struct each call makes are freed at once, as the
engine's own compute-time ring does). Per call, over the stride's worker span (processor call, its
resampling back to the device rate and the mix into the output ring):

- ``wall``: ``time.perf_counter`` over the span; ``cpu``: the worker thread's own CPU time
  (``time.thread_time``, user + system, of this thread only) over the same span; ``wait`` = wall - cpu,
  the time the thread existed but did not run (preempted, waiting for the GIL, blocked);
- ``minflt``/``majflt``: page faults, and ``nvcsw``/``nivcsw``: voluntary and involuntary context
  switches, of the worker thread (``getrusage(RUSAGE_THREAD)``; the process's, ``RUSAGE_SELF``, where
  the platform has no per-thread figure: ``USAGE_SCOPE`` says which);
- parts (wall seconds): ``processor`` (the engine's compute time for the call: window shift, every
  ``process``, output checks), of which ``frontend``, ``denoiser``, ``stage`` (the ``resynth`` graph)
  are the backend's graph runs, timed by a proxy around ``processor.backend`` and by the backend's
  ``timer`` for the calls a processor bound (Backend.bind) while tracing (the
  processor itself exposes no part timings; a processor without a ``backend`` has these at 0, its call
  is the one ``processor`` part); ``resample`` (model rate -> device rate), ``mix`` (level match, wet/dry,
  soft clip, output ring); ``input``: the block-side work (sanitise, gain, dry line, device -> model rate
  resampling) done since the previous call, outside the span;
- ``level``: the RMS of the stride's new input (denormal-prone silence has level ~0), ``dropouts``: the
  callback's counter when the call ended.

Late calls and their classes (``classify``): a call is late when its ``wall`` exceeds ``budget`` (the
stride, the worker's time per call on average; the governor's "late" is 0.9 of it, and the compute margin
in the latency is the slack a single call has). Each late call gets the first class that fits:

- ``faults``: a major fault, or minor faults whose estimated cost (``MINOR_FAULT_S`` each) alone covers
  the overrun (wall - budget). Faults come first because their kernel time counts as the thread's CPU
  time and a major fault's disk wait as its wait: they point at allocation (fresh pages touched by
  numpy/ONNX Runtime buffers, an arena growing) or at paged-out memory, not at the model's compute;
- ``cpu``: the thread's own CPU time is over the budget: the work itself does not fit, even with the
  core to itself. Points at compute (the model, more steps than the CPU affords, denormal arithmetic,
  ONNX Runtime spinning in this thread), never at scheduling;
- ``waiting``: CPU time within the budget and at least half the wall spent not running: the call would
  have been on time had the thread run. Points at scheduling (another process or JACK on the shared
  cores: involuntary switches, ``nivcsw``) or at the GIL and locks (the thread gave the CPU up itself:
  voluntary switches, ``nvcsw``, with no involuntary one); ``summarise`` counts the two apart;
- ``other``: CPU within the budget but most of the wall running: compute near the budget plus a short
  wait, neither alone the cause.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

# RUSAGE_THREAD is Linux-only; elsewhere the faults and switches are the whole process's.
USAGE_WHO: int = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
USAGE_SCOPE = "thread" if hasattr(resource, "RUSAGE_THREAD") else "process"
CAPACITY = 65536
MINOR_FAULT_S = 2e-6  # an assumed cost per minor fault (zeroing a 4 KiB page plus the trap, on a VM)
CLASSES = ("cpu", "waiting", "faults", "other")
GRAPH_PARTS = {"frontend": "frontend", "denoiser": "denoiser", "resynth": "stage"}  # backend graph -> part
PART_OF = {**GRAPH_PARTS, "condition": "denoiser"}  # every graph a call may run (an int8 denoiser runs as "denoiser")
PARTS = ("processor", "frontend", "denoiser", "stage", "resample", "mix", "input")
FIELDS = ("t", "wall", "cpu", "wait", "minflt", "majflt", "nvcsw", "nivcsw", *PARTS, "level", "dropouts")
RECORD = np.dtype([
    ("t", "f8"), ("wall", "f8"), ("cpu", "f8"), ("wait", "f8"),
    ("minflt", "i8"), ("majflt", "i8"), ("nvcsw", "i8"), ("nivcsw", "i8"),
    *((p, "f8") for p in PARTS),
    ("level", "f4"), ("dropouts", "i8"),
])


class TimedBackend:
    """A stand-in for a processor's ``backend`` that adds each graph run's wall time to ``acc`` (seconds per
    part, in ``GRAPH_PARTS`` order); everything else goes to the wrapped backend."""

    def __init__(self, inner: Any, acc: np.ndarray) -> None:
        self.inner = inner
        self._acc = acc
        parts = list(GRAPH_PARTS.values())
        self._slot = {graph: parts.index(part) for graph, part in PART_OF.items()}

    def add(self, graph: str, seconds: float) -> None:
        """The backend's ``timer``: a bound call's wall time (Backend.bind) into its part."""
        slot = self._slot.get(graph)
        if slot is not None:
            self._acc[slot] += seconds

    def run(self, graph: str, *inputs: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.inner.run(graph, *inputs)  # type: ignore[no-any-return]
        finally:
            slot = self._slot.get(graph)
            if slot is not None:
                self._acc[slot] += time.perf_counter() - t0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CallTrace:
    """The ring of per-call records (see the module doc); the worker is its only writer."""

    def __init__(self, budget_s: float, capacity: int = CAPACITY, margin_s: float | None = None) -> None:
        self.budget_s = budget_s
        self.margin_s = margin_s
        self.capacity = capacity
        self.data = np.zeros(capacity, RECORD)
        self.count = 0
        self._cols = {name: self.data[name] for name in FIELDS}  # views: a store writes in place
        self._graph_s = np.zeros(len(GRAPH_PARTS), np.float64)
        self._origin = time.perf_counter()
        self._input_s = 0.0
        self._wall0 = self._cpu0 = 0.0
        self._usage0: Any = None
        self._wrapped: list[tuple[Any, Any]] = []

    # ---- the processors' backends (while stopped) --------------------------------------------------

    def instrument(self, processors: Sequence[Any]) -> None:
        """Time the backend graph runs of processors that have a ``backend`` with ``run``."""
        for p in processors:
            inner = getattr(p, "backend", None)
            if inner is not None and callable(getattr(inner, "run", None)) and not isinstance(inner, TimedBackend):
                p.backend = timed = TimedBackend(inner, self._graph_s)
                inner.timer = timed.add  # the calls the processor bound before the trace (Backend.bind)
                self._wrapped.append((p, inner))

    def restore(self) -> None:
        for p, inner in self._wrapped:
            p.backend = inner
            inner.timer = None
        self._wrapped.clear()

    # ---- the worker's side ---------------------------------------------------------------------------

    def add_input(self, seconds: float) -> None:
        self._input_s += seconds

    def begin(self) -> None:
        self._graph_s[:] = 0.0
        self._wall0 = time.perf_counter()
        self._cpu0 = time.thread_time()
        self._usage0 = resource.getrusage(USAGE_WHO)

    def end(self, processor_s: float, resample_s: float, mix_s: float, level: float, dropouts: int) -> None:
        u1 = resource.getrusage(USAGE_WHO)
        cpu = time.thread_time() - self._cpu0
        wall = time.perf_counter() - self._wall0
        u0, c, i = self._usage0, self._cols, self.count % self.capacity
        c["t"][i] = self._wall0 - self._origin
        c["wall"][i] = wall
        c["cpu"][i] = cpu
        c["wait"][i] = wall - cpu
        c["minflt"][i] = u1.ru_minflt - u0.ru_minflt
        c["majflt"][i] = u1.ru_majflt - u0.ru_majflt
        c["nvcsw"][i] = u1.ru_nvcsw - u0.ru_nvcsw
        c["nivcsw"][i] = u1.ru_nivcsw - u0.ru_nivcsw
        c["processor"][i] = processor_s
        g = self._graph_s
        c["frontend"][i] = g[0]
        c["denoiser"][i] = g[1]
        c["stage"][i] = g[2]
        c["resample"][i] = resample_s
        c["mix"][i] = mix_s
        c["input"][i] = self._input_s
        c["level"][i] = level
        c["dropouts"][i] = dropouts
        self._input_s = 0.0
        self.count += 1

    # ---- readers ---------------------------------------------------------------------------------------

    def records(self) -> np.ndarray:
        """The recorded calls, oldest first (the last ``capacity`` when more were made); a copy."""
        n = min(self.count, self.capacity)
        start = self.count - n
        return np.roll(self.data, -(start % self.capacity))[:n].copy() if n else self.data[:0].copy()


def classify(records: np.ndarray, budget_s: float) -> np.ndarray:
    """One class name per record: '' for calls within the budget, else one of ``CLASSES`` (module doc)."""
    wall, cpu, wait = records["wall"], records["cpu"], records["wait"]
    late = wall > budget_s
    overrun = wall - budget_s
    faults = (records["majflt"] > 0) | (records["minflt"] * MINOR_FAULT_S >= overrun)
    out = np.full(len(records), "", dtype=object)
    out[late] = "other"
    out[late & (wait >= 0.5 * wall)] = "waiting"
    out[late & (cpu > budget_s)] = "cpu"
    out[late & faults] = "faults"  # last assignment wins: faults, then cpu, then waiting, then other
    return out


def _stats(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    ms = 1000.0 * values
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "max_ms": round(float(ms.max()), 4)}


def _call(record: np.void, cls: str) -> dict[str, Any]:
    ms = {k: round(1000.0 * float(record[k]), 4) for k in ("wall", "cpu", "wait")}
    parts = {p: round(1000.0 * float(record[p]), 4) for p in PARTS}
    parts["processor_own"] = round(parts["processor"] - parts["frontend"] - parts["denoiser"] - parts["stage"], 4)
    return {"t_s": round(float(record["t"]), 4), "class": cls, **{f"{k}_ms": v for k, v in ms.items()},
            "minflt": int(record["minflt"]), "majflt": int(record["majflt"]), "nvcsw": int(record["nvcsw"]),
            "nivcsw": int(record["nivcsw"]), "level": float(record["level"]), "parts_ms": parts}


def summarise(records: np.ndarray, budget_s: float, worst: int = 20) -> dict[str, Any]:
    """Counts per class of the calls over ``budget_s``, p50/p99/max of wall, cpu and wait (all calls and the
    late ones), the waiting calls split by context switch, dropouts after late calls, the ``worst`` calls."""
    classes = classify(records, budget_s)
    late = classes != ""
    waiting = classes == "waiting"
    n = len(records)
    # A dropout counted between this call's end and the next one's: did the late calls cause the dropouts?
    drop_step = np.diff(records["dropouts"], append=records["dropouts"][-1:]) if n else np.zeros(0, np.int64)
    order = np.argsort(-records["wall"], kind="stable")[:worst]
    return {
        "budget_ms": round(1000.0 * budget_s, 4),
        "calls": n,
        "late": int(late.sum()),
        "classes": {c: int((classes == c).sum()) for c in CLASSES},
        "waiting_preempted": int((waiting & (records["nivcsw"] > 0)).sum()),  # the kernel took the core
        "waiting_blocked": int((waiting & (records["nivcsw"] == 0) & (records["nvcsw"] > 0)).sum()),  # GIL, locks
        "late_followed_by_dropout": int((late & (drop_step > 0)).sum()),
        "dropouts_in_trace": int(records["dropouts"][-1] - records["dropouts"][0]) if n else 0,
        "all": {k: _stats(records[k]) for k in ("wall", "cpu", "wait")},
        "late_calls": {k: _stats(records[k][late]) for k in ("wall", "cpu", "wait")},
        "minflt_per_call_mean": round(float(records["minflt"].mean()), 3) if n else 0.0,
        "majflt_total": int(records["majflt"].sum()),
        "calls_with_involuntary_switch": int((records["nivcsw"] > 0).sum()),
        "parts_ms_mean": {p: round(1000.0 * float(records[p].mean()), 4) if n else 0.0 for p in PARTS},
        "worst": [_call(records[i], str(classes[i]) or "on time") for i in order],
    }


def trace_report(trace: CallTrace, worst: int = 20) -> dict[str, Any]:
    """The JSON-ready trace: settings, the summary over the stride budget (and the margin, when known), and
    every record as columns (seconds, rounded to 0.1 us)."""
    records = trace.records()
    report: dict[str, Any] = {
        "usage_scope": USAGE_SCOPE,
        "switch_interval_ms": 1000.0 * sys.getswitchinterval(),
        "minor_fault_cost_us": 1e6 * MINOR_FAULT_S,
        "calls_made": trace.count,
        "calls_kept": len(records),
        "over_stride": summarise(records, trace.budget_s, worst),
    }
    if trace.margin_s is not None:
        report["over_margin"] = summarise(records, trace.margin_s, 0)
    report["records"] = {name: (np.round(records[name], 7).tolist() if records.dtype[name].kind == "f"
                                else records[name].tolist()) for name in FIELDS}
    return report
