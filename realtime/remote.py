"""The engine in its own process, so that a panel's Python work can never take the GIL from the audio.

Why: the PortAudio callback and the engine's worker are Python threads, and CPython runs one thread's
Python at a time. In the panel's process a GUI thread busy in Python (a long repaint, a dialog, a
garbage-collection pass) delays both by up to the switch interval for every hand-over; at CPython's
default 5 ms that lost ~40 of 94 blocks (tests/gui/test_panel_jack.py), and even at 0.5 ms a few.
``RemoteSession`` runs a ``LiveSession`` in a spawned child process (its own interpreter, its own
GIL) and offers the surface the panel uses, through ``RemoteEngine``:

    engine.config, engine.latency        fixed when the stream starts (sent once)
    engine.set_params(p), engine.status()  small pickled messages over a duplex Pipe
    engine.input_tap, engine.output_tap   SignalTaps over shared memory: the child's worker writes
                                          them exactly as in-process, the panel reads them; no copies
                                          through the pipe, and a stalled panel cannot push back
    engine.blocks, engine.dropouts        counters (without resetting status()'s peaks)
    session.active, .device_name, .stop(), .check()

In the child a control thread answers the pipe; it never touches the audio path (set_params swaps an
immutable snapshot, status() reads counters). The child stops its stream when asked, when the pipe
reaches EOF (the panel closed or died: no orphan keeps the device), or when the stream dies (it
reports why in the next reply). Spawned, not forked: forking a process that runs Qt, JACK and
PortAudio threads would copy locks held by threads that do not exist in the child.

Cost: the first start imports numpy, PortAudio and ONNX Runtime in a fresh interpreter (about a
second) and each status poll is one pipe round trip (well under a millisecond).
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

from diffusion.errors import StylehostError
from realtime.engine import EngineConfig
from realtime.params import EngineParams, EngineStatus, Latency
from realtime.session import Session, SessionConfig
from realtime.tap import SignalTap

START_TIMEOUT_S = 60.0  # a cold start loads the bundle, verifies its hashes and opens the backend
REPLY_TIMEOUT_S = 2.0  # a control reply is sub-millisecond; this long means the child is gone or stuck
MAX_TAP_RATE = 384000  # taps are sized before the device rate is known: this rate's tap_seconds


@dataclass(frozen=True)
class SessionSpec:
    """What the child needs to open the same LiveSession the panel would open in-process."""

    model: str  # bundle spec or "passthrough"
    backend: str = "auto"
    input: int | str | None = None
    output: int | str | None = None
    samplerate: int | None = None
    blocksize: int = 256
    margin_ms: float | None = None  # None: the bundle's recommended margin (Session.margin_ms)
    harmonic: bool = False
    precision: str = "auto"
    denoiser_input: str = "bundle"

    @property
    def session(self) -> SessionConfig:
        """What the child opens with realtime.session.open_session, as every other front end does."""
        return SessionConfig(self.model, self.backend, self.harmonic, self.precision, self.denoiser_input)


@dataclass(frozen=True)
class Started:
    """The child's answer once streaming: everything fixed for the stream's life."""

    config: EngineConfig
    latency: Latency
    device_name: str
    passthrough: bool
    styles: tuple[str, ...] | None  # the bundle's styles; None for the passthrough
    tap_capacity: int


class RemoteEngine:
    """The parent's view of the child's Engine (see the module docstring for what it offers)."""

    def __init__(self, session: RemoteSession, started: Started, taps: tuple[SignalTap, SignalTap]) -> None:
        self._session = session
        self.config = started.config
        self.latency = started.latency
        self.input_tap, self.output_tap = taps
        self.params: EngineParams | None = None

    def set_params(self, params: EngineParams) -> EngineParams:
        self._session.request("params", params)
        self.params = params
        return params

    def status(self) -> EngineStatus:
        return self._session.request("status")

    @property
    def blocks(self) -> int:
        return self._session.request("counters")[0]

    @property
    def dropouts(self) -> int:
        return self._session.request("counters")[1]


class RemoteSession:
    """A LiveSession in a child process; same start/stop/active/check/device_name as LiveSession."""

    def __init__(self, spec: SessionSpec, params: EngineParams | None = None) -> None:
        self.spec = spec
        self.params = params or EngineParams()
        self.engine: RemoteEngine | None = None
        self.started: Started | None = None
        self.failure: str | None = None
        self._proc: Any = None
        self._conn: Connection | None = None
        self._shms: list[SharedMemory] = []
        self._lock = threading.Lock()  # one request/reply in flight (the GUI thread, or a test's thread)

    @property
    def device_name(self) -> str:
        return self.started.device_name if self.started else "(not started)"

    def start(self) -> RemoteSession:
        ctx = mp.get_context("spawn")
        size = SignalTap.storage_bytes(int(EngineConfig.tap_seconds * MAX_TAP_RATE))
        self._shms = [SharedMemory(create=True, size=size) for _ in range(2)]
        parent, child = ctx.Pipe(duplex=True)
        self._conn = parent
        self._proc = ctx.Process(target=_child_main, name="stylehost-engine", daemon=True,
                                 args=(child, self.spec, self.params, [s.name for s in self._shms]))
        try:
            self._proc.start()
            child.close()
            if not parent.poll(START_TIMEOUT_S):
                raise StylehostError(f"the engine process did not start within {START_TIMEOUT_S:.0f} s")
            kind, payload = parent.recv()
        except (EOFError, OSError) as exc:
            self._cleanup()
            raise StylehostError(f"the engine process died while starting (exit code {self._exitcode()})") from exc
        except StylehostError:
            self._cleanup()
            raise
        if kind == "error":
            self._cleanup()
            raise StylehostError(payload)
        self.started = payload
        cap = payload.tap_capacity
        taps = (SignalTap(cap, storage=self._shms[0].buf), SignalTap(cap, storage=self._shms[1].buf))
        self.engine = RemoteEngine(self, payload, taps)
        self.engine.params = self.params
        return self

    def request(self, kind: str, payload: object = None) -> Any:
        """Send one control message, wait for its reply; StylehostError for a refusal or a dead child."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StylehostError(self.failure or "the engine process is not running")
            try:
                conn.send((kind, payload))
                if not conn.poll(REPLY_TIMEOUT_S):
                    raise StylehostError(f"the engine process did not answer within {REPLY_TIMEOUT_S:.0f} s")
                ok, value, failure = conn.recv()
            except (EOFError, OSError, BrokenPipeError) as exc:
                self.failure = self.failure or f"the engine process died (exit code {self._exitcode()})"
                raise StylehostError(self.failure) from exc
        if failure and not self.failure:
            self.failure = failure
        if not ok:
            raise StylehostError(value)
        return value

    @property
    def active(self) -> bool:
        """The child is alive and its stream runs (a dead stream or process is reported by ``check``)."""
        if self._conn is None or self.failure is not None:
            return False
        try:
            return bool(self.request("alive"))
        except StylehostError:
            return False

    def check(self) -> None:
        """Raise one StylehostError if the stream or the engine process died (the session is then stopped)."""
        if self._conn is not None and self.failure is None and not self.active:
            self.failure = self.failure or f"the stream on {self.device_name} stopped"  # active may have set it
        if self.failure is not None:
            self.stop()
            raise StylehostError(self.failure)

    def stop(self) -> None:
        """Ask the child to stop (it closes its stream and joins its worker), then reap it."""
        if self._conn is None:
            return
        try:
            with self._lock:
                self._conn.send(("stop", None))
                if self._conn.poll(5.0):
                    self._conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            pass
        self._cleanup()

    def _exitcode(self) -> int | None:
        if self._proc is None:
            return None
        self._proc.join(timeout=0.5)
        return self._proc.exitcode

    def _cleanup(self) -> None:
        if self.engine is not None:
            for tap in (self.engine.input_tap, self.engine.output_tap):
                tap.release()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            self._proc.join(timeout=5.0)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=5.0)
            self._proc = None
        for shm in self._shms:
            shm.close()
            shm.unlink()
        self._shms = []

    def __enter__(self) -> RemoteSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _child_main(conn: Connection, spec: SessionSpec, params: EngineParams, shm_names: list[str]) -> None:
    """The engine process: open the session, report, then answer control messages until told to stop."""
    from realtime.audio import LiveSession
    from realtime.session import open_session

    shms = [SharedMemory(name=name) for name in shm_names]
    taps: list[SignalTap] = []
    session = None
    try:
        try:
            opened = open_session(spec.session)
            opened.check_params(params)
            session = LiveSession(opened.factory, input=spec.input, output=spec.output, samplerate=spec.samplerate,
                                  blocksize=spec.blocksize,
                                  margin_ms=opened.margin_ms if spec.margin_ms is None else spec.margin_ms,
                                  params=params)
            engine = session.engine
            cap = min(engine.input_tap.capacity, int(EngineConfig.tap_seconds * MAX_TAP_RATE))
            taps = [SignalTap(cap, engine.input_tap._mono.size, storage=shm.buf) for shm in shms]
            engine.input_tap, engine.output_tap = taps
            session.start()
        except StylehostError as exc:
            conn.send(("error", str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the panel gets one line
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
            return
        conn.send(("started", Started(engine.config, engine.latency, session.device_name, opened.passthrough,
                                      opened.styles, cap)))
        _serve(conn, session, opened)
    finally:
        if session is not None:
            try:
                session.stop()
            except StylehostError:
                pass
        for tap in taps:
            tap.release()
        for shm in shms:
            shm.close()
        conn.close()


def _serve(conn: Connection, session: Any, opened: Session) -> None:
    """Answer (ok, value, failure) to each message; failure says why the stream died, once it has."""
    engine = session.engine
    while True:
        try:
            if not conn.poll(0.5):
                continue
            kind, payload = conn.recv()
        except (EOFError, OSError):
            return  # the panel is gone: stop streaming
        if kind == "stop":
            session.stop()
            conn.send((True, None, None))
            return
        alive = session.active
        failure = None if alive else (session.failure or f"the stream on {session.device_name} stopped: the audio "
                                      "server went away or the device was unplugged")
        try:
            if kind == "params":
                engine.set_params(opened.check_params(payload))
                reply: tuple[bool, object, str | None] = (True, None, failure)
            elif kind == "status":
                reply = (True, engine.status(), failure)
            elif kind == "counters":
                reply = (True, (engine.blocks, engine.dropouts), failure)
            elif kind == "alive":
                reply = (True, alive, failure)
            else:
                reply = (False, f"unknown engine request {kind!r}", failure)
        except StylehostError as exc:
            reply = (False, str(exc), failure)
        conn.send(reply)
        time.sleep(0)  # let the audio threads in between requests
