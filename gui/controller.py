"""The panel's only door to the engine: parameter snapshots in, status snapshots and taps out.

No Qt here, so tests and other front ends can drive it. It uses exactly what `stylehost live` uses
(LiveSession, realtime.session.open_session, Engine.set_params/status) plus the engine's lock-free taps; it never
takes a lock the audio path waits on (Engine.set_params' lock is shared with other writers only).
"""

from __future__ import annotations

from dataclasses import dataclass

from diffusion.errors import StylehostError
from realtime.audio import LiveSession
from realtime.engine import Engine
from realtime.params import EngineParams, EngineStatus
from realtime.remote import RemoteEngine, RemoteSession, SessionSpec
from realtime.session import Session, SessionConfig, open_session


@dataclass(frozen=True)
class StreamSettings:
    """What the device row of the panel chooses; fixed while a stream runs."""

    input: int | str | None = None  # device index or name; None = PortAudio default
    output: int | str | None = None
    samplerate: int | None = None  # None = the output device's own rate
    blocksize: int = 256
    model: str | None = None  # bundle path; None = DSP passthrough
    backend: str = "auto"
    # What the model hears: "bundle" (its manifest's choice), "source" (the input) or "excitation" (the input's
    # pitch and loudness as a harmonic series: for whistles, voices, synths; the stage then shapes it too).
    denoiser_input: str = "bundle"

    @property
    def harmonic(self) -> bool:
        """The model can hear the excitation only if the stage shapes one: ask for it (a bundle's own is kept)."""
        return self.denoiser_input == "excitation"


class EngineController:
    """Holds the current EngineParams and, while streaming, the session they are sent to.

    ``separate_process``: run the stream in its own process (realtime/remote.py), so that nothing the
    GUI thread does in Python can hold the GIL the callback and worker need; `stylehost gui` does.
    In-process (the default) the engine is a plain attribute, which tests and scripts can inspect.
    """

    def __init__(self, params: EngineParams | None = None, separate_process: bool = False) -> None:
        self.params = params or EngineParams()
        self.session: LiveSession | RemoteSession | None = None
        self.passthrough = True
        self.separate_process = separate_process
        self.opened: Session | None = None  # the in-process session's bundle and factory (it checks params)

    @property
    def engine(self) -> Engine | RemoteEngine | None:
        return self.session.engine if self.session is not None else None

    @property
    def running(self) -> bool:
        return self.session is not None

    def update(self, params: EngineParams | None = None, /, **changes: object) -> EngineParams:
        """New snapshot (validated: StylehostError on bad values); sent to the engine if it runs."""
        base = params if params is not None else self.params
        new = base.replace(**changes) if changes else base
        if self.session is not None:
            self._check(new)  # e.g. a style the running bundle lacks: refuse before the worker sees it
            engine = self.session.engine
            assert engine is not None  # only started sessions are stored, and starting sets the engine
            engine.set_params(new)
        self.params = new
        return new

    def start(self, settings: StreamSettings) -> LiveSession | RemoteSession:
        """Load the processor, open the devices and stream; StylehostError says what failed."""
        if self.session is not None:
            self.stop()
        if self.separate_process:  # the child loads the bundle and checks the params; errors come back
            remote = RemoteSession(SessionSpec(model=settings.model or "passthrough", backend=settings.backend,
                                               input=settings.input, output=settings.output,
                                               samplerate=settings.samplerate, blocksize=settings.blocksize,
                                               harmonic=settings.harmonic, denoiser_input=settings.denoiser_input),
                                   self.params).start()
            assert remote.started is not None
            self.opened = None
            self.session, self.passthrough = remote, remote.started.passthrough
            return remote
        # "passthrough", not None: None would let the bundle resolver pick a default model.
        opened = open_session(SessionConfig(settings.model or "passthrough", settings.backend, settings.harmonic,
                                            denoiser_input=settings.denoiser_input))
        opened.check_params(self.params)
        self.opened = opened
        session = LiveSession(
            opened.factory,
            input=settings.input,
            output=settings.output,
            samplerate=settings.samplerate,
            blocksize=settings.blocksize,
            margin_ms=opened.margin_ms,
            params=self.params,
        )
        session.start()
        self.session, self.passthrough = session, opened.passthrough
        return session

    @property
    def model_styles(self) -> tuple[str, ...] | None:
        """Styles the running bundle knows; None for the passthrough (it ignores styles)."""
        if isinstance(self.session, RemoteSession):
            return self.session.started.styles if self.session.started else None
        return self.opened.styles if self.opened is not None else None

    def _check(self, params: EngineParams) -> None:
        """In-process, the opened session refuses styles its bundle lacks; the engine process does the same
        with each snapshot it receives (realtime/remote.py)."""
        if self.opened is not None and not isinstance(self.session, RemoteSession):
            self.opened.check_params(params)

    def stop(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.stop()

    def status(self) -> EngineStatus | None:
        """The engine's snapshot (peaks since the last call), or None while stopped."""
        engine = self.engine
        return engine.status() if engine is not None else None

    def check_alive(self) -> None:
        """Raise StylehostError if the stream died under us (device unplugged, server gone)."""
        if self.session is not None and not self.session.active:
            name, failure = self.session.device_name, self.session.failure
            self.stop()
            raise StylehostError(failure or f"the stream on {name} stopped (device unplugged or audio server gone)")
