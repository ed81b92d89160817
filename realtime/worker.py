"""The worker half of the engine: everything between the input ring and the output ring.

Thread: the model worker ("stylehost-worker", started by ``start``), or ``render``'s loop right after
each block offline (``pump``). Why a file of its own: this is the only thread that calls a processor,
so it owns the resamplers, the processor windows, the parameter snapshot it applied and the load
governor; the callback only hands it blocks through the input ring and a self-pipe wake-up.

    input ring -(B)-> sanitise + gain (faults.py) -> [dry delay line] -> mid / per-channel
    -> resample R->r -> model-rate ring -(s)-> processor window -> processor -> output checks (faults.py)
    -> resample r->R -> level match, wet/dry mix, soft clip (mix.py) -> output ring

``start`` and ``stop`` run on the controlling thread (the CLI's, the panel's or the engine process's);
they only create, signal and join the worker thread.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable

import numpy as np

from realtime.calltrace import CallTrace
from realtime.faults import FaultHandling
from realtime.governor import LoadGovernor
from realtime.mix import Mixing

SPIN_SLICE_S = 50e-6  # EngineConfig.spin_ms: busy this long between hand-overs of the GIL


class WorkerSide(FaultHandling, Mixing):
    """``pump`` and the worker thread around it; the guards and the mix it calls are its bases."""

    def pump(self) -> int:
        """Process the whole blocks that were waiting when called; return how many blocks.

        Bounded on purpose: an overloaded model never empties the ring (input keeps arriving), and an
        unbounded loop kept the worker from ever seeing its stop flag or its catch-up skip again.
        """
        self._apply_params()
        B = self.config.blocksize
        backlog = self._in_ring.read_available
        if backlog > self._prime + 2 * B:
            self._skip(backlog // B * B - B)
        todo = self._in_ring.read_available // B
        done = 0
        while done < todo and not self._stop.is_set():  # audit: pump-bounded
            self._in_ring.read(self._in_block)
            self._worker_block(self._in_block)
            done += 1
        return done

    def _skip(self, n: int) -> None:
        """Fell far behind: drop n input samples and stand n silent samples in for their output.

        The placeholders keep output index = input index + latency for everything after the skip
        (the callback's debt discards them if they arrive late); the dry line skips the same input.
        """
        n = self._in_ring.discard(n)
        self._out_ring.write_zeros(n)
        self.skipped += n

    def _apply_params(self) -> None:
        params = self._params
        if params is self._applied:
            return
        first = self._applied is None  # the first snapshot applies at once, no ramp from defaults
        self._gain.set(10.0 ** (params.input_gain_db / 20.0), first)
        self._wet.set(0.0 if params.bypass else params.wet, first)
        self._dry_gain.set(1.0 if params.bypass else 1.0 - params.wet, first)
        model = params.model_params()
        if self._applied is None or model != self._applied.model_params():
            cap = self.governor.request(params.steps)
            if self._governing:
                model["steps"] = max(1, cap)  # the governor's cap; 0 (dry) keeps one step for the retry
            self._set_processor_params(**model)
        self._applied = params

    def _set_processor_params(self, **params: object) -> None:
        """Hand the processors new parameters (the user's, or the governor's step cap); a refusal is a fault."""
        for c, p in enumerate(self.processors):
            try:
                p.set_params(**params)
            # audit: set-params-refusal
            except Exception as exc:  # a processor refusing a value must not kill the worker
                self._processor_fault(c, exc)

    def _worker_block(self, block: np.ndarray) -> None:
        trace = self.trace  # None unless enable_trace (realtime/calltrace.py): one test per block
        t0 = time.perf_counter() if trace is not None else 0.0
        self._sanitise_input(block, self._gain.next(len(block)))
        self._in_peak = max(self._in_peak, float(np.max(np.abs(block))))
        self.input_tap.write(block)
        self._dry_ring.write(block)
        mono = block.mean(axis=1, keepdims=True) if len(self.processors) == 1 else block
        self._model_ring.write(self._to_model.process(np.ascontiguousarray(mono, dtype=np.float32)))
        if trace is not None:
            trace.add_input(time.perf_counter() - t0)
        stride = self._stride_in.shape[0]
        while self._model_ring.read_available >= stride:
            self._model_ring.read(self._stride_in)
            if trace is not None:
                self._traced_stride(trace)
                continue
            self._run_processors()
            self._emit(self._to_device.process(self._stride_out))

    def _traced_stride(self, trace: CallTrace) -> None:
        """One stride as above, recorded: wall, thread CPU, faults, switches and parts (realtime/calltrace.py).
        A stride the governor plays dry makes no processor call and so no record."""
        calls = self.compute_count
        s = self._stride_in
        level = float(np.sqrt(np.vdot(s, s) / s.size))  # vdot: a scalar, no temporary array
        trace.begin()
        self._run_processors()
        t1 = time.perf_counter()
        wet = self._to_device.process(self._stride_out)
        t2 = time.perf_counter()
        self._emit(wet)
        t3 = time.perf_counter()
        if self.compute_count != calls:
            processor_s = float(self._compute_times[calls % len(self._compute_times)])
            trace.end(processor_s, t2 - t1, t3 - t2, level, self.dropouts)

    def _run_processors(self) -> None:
        stride = self._stride_in.shape[0]
        win = self._windows
        t0 = time.perf_counter()
        win[:, :-stride] = win[:, stride:]
        win[:, -stride:] = self._stride_in.T
        if self._governing and self.governor.cap == 0:
            self._play_dry()
            return
        faults = self.processor_errors + self.bad_output
        for c, proc in enumerate(self.processors):
            try:
                proc.process(win[c], self._stride_out[:, c])
            # audit: processor-raise-fallback
            except Exception as exc:  # a backend failing mid-run: dry at the same latency, never a dead worker
                self._processor_fault(c, exc)
        self._check_output(faults)
        dt = time.perf_counter() - t0
        self._compute_times[self.compute_count % len(self._compute_times)] = dt
        self.compute_count += 1
        budget = stride / self.model_rate
        self._load = 0.9 * self._load + 0.1 * (dt / budget)
        if self._governing:
            cap = self.governor.observe(dt, self.dropouts)  # audit: governor-observes
            if cap == 0:
                self._fallback.set(0.0)  # this stride's wet is good: ramp to the dry line
            elif cap is not None:
                self._set_processor_params(steps=cap)

    def _spin(self, seconds: float, block: int) -> None:
        """``EngineConfig.spin_ms``: poll for the next whole block for up to ``seconds`` instead of sleeping at
        once. Why: a vCPU that sleeps between strides wakes cold, and the next processor call is slower (one-frame
        streaming call, offline: p50 2.39 ms back to back, 3.43 ms after a 2-ms sleep, 2.44 ms after polling the
        same 2 ms; `benchmarks.processor_ms --gap-ms`, docs/live.md). The price is the worker's core kept busy."""
        spin(seconds, lambda: self._in_ring.read_available >= block or self._stop.is_set())

    def _play_dry(self) -> None:
        """Governor cap 0: no model call this stride; the dry line plays at the same latency."""
        self._stride_out[:] = 0.0
        self.dry_strides += 1
        self._fallback.set(0.0, immediate=True)
        self._load *= 0.9
        if self.governor.idle() is not None:  # time to retry one step: fresh state, a clean window first
            for p in self.processors:
                p.reset()
            self._set_processor_params(steps=1)
            self._unhealthy = self._recover_calls

    # ---- the worker thread's life (called from the controlling thread) ---------------------------------

    def start(self) -> None:
        """Start the worker thread (live use); the callback wakes it through a non-blocking pipe."""
        if self._thread is not None:
            return
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stop.clear()
        self.governor = LoadGovernor(self.governor.stride_s, self._params.steps, self.governor.config)
        self._governing = self.config.governor
        self._thread = threading.Thread(target=self._run, name="stylehost-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        os.write(self._wake_w, b"\0")
        self._thread.join(timeout=5.0)
        if self._thread.is_alive():  # one processor call still running; it sees the flag right after
            self._thread.join(timeout=30.0)
        self._thread = None
        self._governing = False
        w, r = self._wake_w, self._wake_r
        self._wake_w = self._wake_r = -1
        os.close(w)
        os.close(r)

    def _run(self) -> None:
        self.realtime_priority = raise_priority()
        if self.config.pin_cpus:
            cpus = split_cpus()[1]
            self.pinned_cpus = sorted(cpus) if pin_thread(cpus) else []
        spin_s, block = self.config.spin_ms / 1000.0, self.config.blocksize
        while not self._stop.is_set():
            if spin_s > 0.0:
                self._spin(spin_s, block)
            waiting = self._in_ring.read_available >= block
            ready, _, _ = select.select([self._wake_r], [], [], 0.0 if waiting else 0.1)
            if ready:
                os.read(self._wake_r, 4096)
            try:
                self.pump()
            # audit: worker-survives-exceptions
            except Exception as exc:  # the worker must outlive any bug: the callback keeps playing (dropouts)
                self.worker_errors += 1
                self.last_error = f"worker: {type(exc).__name__}: {exc}"[:300]
                time.sleep(0.01)


def spin(seconds: float, done: Callable[[], bool] = lambda: False) -> None:
    """Poll for up to ``seconds`` (or until ``done()``) without sleeping: busy ``SPIN_SLICE_S`` at a time, then
    hand the GIL over once (``time.sleep(0)``), so the callback thread waits at most one slice for it."""
    end = time.perf_counter() + seconds
    while not done() and time.perf_counter() < end:
        stop = min(end, time.perf_counter() + SPIN_SLICE_S)
        while time.perf_counter() < stop:
            pass
        time.sleep(0)


def split_cpus() -> tuple[set[int], set[int]]:
    """(callback CPUs, worker CPUs) for ``EngineConfig.pin_cpus``: the worker gets the last allowed CPU, the
    audio callback (and JACK, where we start it) the others; ``(set(), set())`` with fewer than two CPUs.

    Why: on a 2-vCPU machine the worker's 3-4 ms calls and JACK's period thread otherwise land on the same
    CPU at times, and the callback waits behind a model call it does not need (docs/live.md has the A/B).
    """
    if not hasattr(os, "sched_getaffinity"):
        return set(), set()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return set(), set()
    return set(cpus[:-1]), {cpus[-1]}


def pin_thread(cpus: set[int]) -> bool:
    """Best effort: keep the calling thread (Linux: ``sched_setaffinity(0)`` is per thread) on ``cpus``."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(0, cpus)
    except OSError:
        return False
    return True


def raise_priority(priority: int = 5) -> bool:
    """Best effort: SCHED_FIFO for the calling (worker) thread, below JACK's audio threads.

    Why: on a loaded machine (a training job on both cores) a normal-priority worker is starved
    for tens of ms and every block drops out. Needs CAP_SYS_NICE or an rtprio limit (the audio
    group on Linux); without it the engine still runs, just less robustly.
    """
    if not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # 0: this thread on Linux
    except (PermissionError, OSError):
        return False
    return True
