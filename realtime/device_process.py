"""The device callback in a process of its own: it holds the PortAudio stream and the shared rings only.

Why: in one process the PortAudio callback thread shares the interpreter with the worker. Every block
it must take the GIL, which the worker holds between its numpy calls and ONNX Runtime runs (and a
collection can hold for tens of ms), so a callback can wait for audio that is already computed: a
late callback, which JACK counts as an xrun. In its own process the callback's interpreter has one
other thread (this module's control loop, asleep in ``select``), no model, no torch, a heap of a few
thousand objects, and nothing to wait for but the copies (docs/live.md, "The callback's own process").

    parent (worker, model)                         device process (this module's ``main``)
    CallbackMemory: input ring  <-- callback writes   PortAudio callback: process_block (callback.py)
                    output ring --> callback reads
                    counters    <-- callback writes
    wake pipe read end          <-- a byte per block
    stdin/stdout lines: "start", "stop" / "ready {...}", "started", "error ..."

The child reads its orders on stdin; end of file (the parent died) stops it, and Linux sends it SIGTERM
when its parent dies, so it never outlives the engine. It ends with ``os._exit`` after closing the
stream: a stream that died under it (the JACK server went away) is never stopped or closed, which would
hang in PortAudio for 10 minutes (realtime/audio.py).

Thread: the parent's side runs on the controlling thread (``LiveSession.start``/``stop``); the child's
control loop on the child's main thread; ``process_block`` on the child's PortAudio thread.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from diffusion.errors import StylehostError
from realtime.callback import CallbackSide
from realtime.device_memory import CallbackMemory, MemoryLayout
from realtime.state import BLOCKS, STREAM_DEAD, STREAM_RUNNING, STREAM_STATE

ROOT = Path(__file__).resolve().parents[1]
OPEN_TIMEOUT_S = 30.0  # spawn, import numpy and sounddevice, open the stream (a loaded 2-core VM: ~1 s)


@dataclass(frozen=True)
class StreamSpec:
    """What the device process opens; the devices are PortAudio indices (the parent resolved them)."""

    input: int
    output: int
    samplerate: int
    blocksize: int
    in_channels: int
    out_channels: int
    fade_ms: float
    capacity: int  # the shared rings' frames (MemoryLayout)
    cpus: tuple[int, ...] = ()  # pin the device process (its PortAudio and JACK threads) here; () = anywhere


class DeviceCallback(CallbackSide):
    """The callback half of the engine, over the shared memory (no worker, no processors)."""

    def __init__(self, spec: StreamSpec, memory: CallbackMemory, wake_w: int) -> None:
        in_ring, out_ring = memory.rings()
        self._init_callback(spec.samplerate, spec.blocksize, spec.out_channels, spec.fade_ms, in_ring, out_ring,
                            memory.counts)
        self._wake_w = wake_w

    def callback(self, indata: Any, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        self.process_block(indata, outdata, status)


class DeviceProcess:
    """The parent's handle on the device process: open (devices checked, latencies back), start, stop."""

    def __init__(self, spec: StreamSpec, memory: CallbackMemory, wake_w: int) -> None:
        if MemoryLayout(spec.capacity, spec.in_channels, spec.out_channels) != memory.layout:
            raise StylehostError("the device process's stream does not match the shared memory's layout")
        self.spec = spec
        self.memory = memory
        self._wake_w = wake_w
        self._proc: subprocess.Popen | None = None
        self.stderr = ""

    def open(self) -> tuple[float, float]:
        """Spawn the child and open the stream there; return its (input, output) latency in seconds."""
        fds = (self.memory.fd, self._wake_w)
        cmd = [sys.executable, "-m", "realtime.device_process", json.dumps(asdict(self.spec)), str(fds[0]),
               str(fds[1])]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      pass_fds=fds, env=env, text=True, bufsize=1)
        kind, payload = self._reply(OPEN_TIMEOUT_S)
        if kind != "ready":
            self.kill()
            raise StylehostError(payload or "the device process ended before opening the stream")
        latency = json.loads(payload)["latency"]
        return float(latency[0]), float(latency[1])

    def start(self) -> None:
        self._send("start")
        kind, payload = self._reply(OPEN_TIMEOUT_S)
        if kind != "started":
            self.kill()
            raise StylehostError(payload or "the device process ended before starting the stream")

    @property
    def running(self) -> bool:
        """The child is alive and its stream is active (it checks PortAudio ten times a second)."""
        return (self._proc is not None and self._proc.poll() is None
                and int(self.memory.counts[STREAM_STATE]) == STREAM_RUNNING)

    def stop(self, abandon: bool = False, timeout: float = 10.0) -> None:
        """Ask the child to close the stream and exit; kill it if it does not within ``timeout``.

        ``abandon``: the stream is dead (the parent saw the callbacks stop), so the child must not call into
        PortAudio at all; a stopped JACK server would hang Pa_StopStream until the kill."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.write("abandon\n" if abandon else "stop\n")
                proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._collect(proc)

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            self._collect(proc)

    def _collect(self, proc: subprocess.Popen) -> None:
        """Keep the tail of the child's stderr and close its pipes."""
        if proc.stderr is not None:
            self.stderr = proc.stderr.read()[-4000:]
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    def _send(self, line: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise StylehostError(f"the device process is gone: {exc}") from exc

    def _reply(self, timeout: float) -> tuple[str, str]:
        """The child's next line as (kind, rest); ("", why) when it ended or did not answer in time."""
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        if not ready:
            return "", f"the device process did not answer within {timeout:.0f} s"
        line = self._proc.stdout.readline().strip()
        if not line:
            self._proc.wait(timeout=5)
            err = self._proc.stderr.read().strip().splitlines() if self._proc.stderr else []
            return "", f"the device process exited with {self._proc.returncode}: {err[-1:] or 'no message'}"
        kind, _, rest = line.partition(" ")
        return kind, rest


def die_with_parent() -> None:
    """Ask Linux to SIGTERM the calling process when its parent dies (PR_SET_PDEATHSIG); also the private
    jackd's ``preexec_fn`` (benchmarks/jackserver.py), so a killed run leaks no child."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def main(argv: list[str]) -> int:
    """The device process: open the stream, report, stream until told to stop (or the parent is gone)."""
    if sys.platform == "linux":
        die_with_parent()
    spec = StreamSpec(**json.loads(argv[0]))
    if spec.cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(spec.cpus))  # before PortAudio: its threads inherit the mask
    memory = CallbackMemory(int(argv[1]), MemoryLayout(spec.capacity, spec.in_channels, spec.out_channels))
    wake_w = int(argv[2])
    callback = DeviceCallback(spec, memory, wake_w)
    import gc

    import sounddevice as sd

    try:
        stream = sd.Stream(device=(spec.input, spec.output), samplerate=spec.samplerate, blocksize=spec.blocksize,
                           channels=(spec.in_channels, spec.out_channels), dtype="float32", latency="low",
                           callback=callback.callback)
    except (sd.PortAudioError, ValueError) as exc:
        print(f"error cannot open the stream: {exc}", flush=True)
        os._exit(0)
    print("ready", json.dumps({"latency": list(stream.latency)}), flush=True)
    if sys.stdin.readline().strip() != "start":
        os._exit(0)
    gc.collect()
    gc.freeze()  # the callback allocates only small temporaries: nothing for a collection to walk
    stream.start()
    memory.counts[STREAM_STATE] = STREAM_RUNNING
    print("started", flush=True)
    seen, seen_at = -1, time.monotonic()
    order = ""
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.1)
        if ready:
            order = sys.stdin.readline().strip()  # "stop", "abandon", or "" at end of file: the parent is gone
            break
        blocks = int(memory.counts[BLOCKS])
        if blocks != seen:
            seen, seen_at = blocks, time.monotonic()
        if not stream.active:
            memory.counts[STREAM_STATE] = STREAM_DEAD
    stalled = time.monotonic() - seen_at > 1.0  # no callback for a second: PortAudio would hang on it
    if order != "abandon" and stream.active and not stalled:
        stream.stop()
        stream.close()
    sys.stdout.flush()
    os._exit(0)  # no Pa_Terminate: a dead stream would hang it (see the module docstring)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
