"""One opener for a session: a bundle (or the DSP passthrough), its backend and a processor factory.

Every front end calls ``open_session``: `stylehost live` and `render` (realtime/commands.py), the panel
in-process (gui/controller.py) and the panel's engine process (realtime/remote.py). So a bundle is
resolved, loaded, checked and its backend opened in one place, and every problem is one StylehostError
line before any stream starts.

Style names are checked once, here, against the *bundle's* own style list (``Session.check_params``),
never against the built-in list in diffusion/styles.py: a bundle trained on a style of its own plays it.
EngineParams only checks that each name is a name; the passthrough ignores styles and takes any.

Thread: whichever thread opens the session (the CLI's main thread, the panel's GUI thread, the engine
process's main thread), always before the stream starts; nothing here runs on the audio threads.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from diffusion.errors import StylehostError
from realtime.params import EngineParams
from realtime.processor import Processor, StftPassthroughProcessor

if TYPE_CHECKING:
    from export.bundle import Bundle
    from realtime.backends.base import Backend

PASSTHROUGH_DEFAULTS: dict[str, float | int] = {"steps": 2, "strength": 1.0}  # the passthrough ignores them


@dataclass(frozen=True)
class SessionConfig:
    """What a front end asks for; the devices and block size are the stream's business, not the session's."""

    model: str | None = None  # bundle folder, manifest or name; None: models/default if it exists; "passthrough"
    backend: str = "auto"  # realtime/backends/choose.py: auto, cpu, ort, cuda, ort-tensorrt, tensorrt, torch
    harmonic: bool = False  # the spectrogram-to-audio stage shapes a harmonic series at the input's pitch
    precision: str = "auto"  # auto | fp32 | int8: the bundle's int8 denoiser on the CPU (export/quantize.py)
    denoiser_input: str = "bundle"  # bundle | source | excitation: what the denoiser hears (ModelProcessor)


class ModelFactory:
    """Makes one ModelProcessor per processed channel; they share the bundle and the loaded backend
    (the worker calls them one after another, never at once)."""

    def __init__(self, bundle: Bundle, backend: Backend, harmonic: bool = False,
                 denoiser_input: str = "bundle") -> None:
        self.bundle = bundle
        self.backend = backend
        self.harmonic = harmonic  # the stage shapes the source's harmonic excitation (--harmonic)
        self.denoiser_input = None if denoiser_input == "bundle" else denoiser_input  # --denoiser-input

    def __call__(self) -> Processor:
        from diffusion.excitation import ExcitationConfig
        from realtime.model_processor import BUNDLE_EXCITATION
        from realtime.stream_processor import make_processor

        # --harmonic gives a bundle without an excitation the default one; a bundle's own stays its own
        excitation = ExcitationConfig().to_dict() if self.harmonic and self.bundle.excitation is None \
            else BUNDLE_EXCITATION
        return make_processor(self.bundle, self.backend, emit=int(self.bundle.defaults["emit"]), excitation=excitation,
                              denoiser_input=self.denoiser_input)


@dataclass(frozen=True)
class Session:
    """An opened session: the processor factory the engine builds its processors with, and the bundle.

    ``bundle`` is None for the DSP passthrough (``factory`` is then StftPassthroughProcessor).
    """

    factory: Callable[[], Processor]
    bundle: Bundle | None = None

    @property
    def passthrough(self) -> bool:
        return self.bundle is None

    @property
    def margin_ms(self) -> float:
        """The compute margin the engine plays this session at unless told otherwise: the bundle's
        recommended one (Bundle.margin_ms), 6 ms for the passthrough."""
        from export.bundle import DEFAULT_MARGIN_MS

        return DEFAULT_MARGIN_MS if self.bundle is None else self.bundle.margin_ms

    @property
    def styles(self) -> tuple[str, ...] | None:
        """The bundle's styles, in its manifest's order; None for the passthrough (it ignores styles)."""
        return None if self.bundle is None else self.bundle.styles

    @property
    def defaults(self) -> dict[str, float | int]:
        """Recommended steps and strength: the bundle's manifest's, or the passthrough's (ignored)."""
        return dict(PASSTHROUGH_DEFAULTS) if self.bundle is None else self.bundle.defaults

    def check_params(self, params: EngineParams) -> EngineParams:
        """Refuse styles the bundle lacks before a stream starts or a snapshot is sent (the worker could only
        drop them); returns ``params`` unchanged."""
        bundle = self.bundle
        if bundle is None:
            return params
        for name, _ in params.style_mix:
            if name not in bundle.styles:  # audit: session-style-check
                raise StylehostError(f"model {bundle.name} has no style {name!r}; its styles: "
                                     f"{', '.join(bundle.styles)}")
        return params

    def params(self, style: str, steps: int | None = None, strength: float | None = None, wet: float = 1.0,
               match_level: bool = True, option: str = "--steps") -> EngineParams:
        """Checked controls for one style; steps and strength not given come from the bundle's defaults.
        ``option`` names the setting in the message when ``steps`` exceeds what the bundle supports."""
        defaults = self.defaults
        steps = int(defaults["steps"]) if steps is None else steps
        strength = float(defaults["strength"]) if strength is None else strength
        if self.bundle is not None and steps > self.bundle.max_steps:  # audit: steps-beyond-bundle
            raise StylehostError(f"{option} {steps}: {self.bundle.name} supports 1..{self.bundle.max_steps} steps "
                                 f"(a {self.bundle.sampler_name} sampler; its manifest's defaults.max_steps); "
                                 f"it recommends {defaults['steps']}")
        params = EngineParams(style_mix=((style, 1.0),), strength=strength, steps=int(steps), wet=wet,
                              match_level=match_level)
        return self.check_params(params)


def passthrough_session() -> Session:
    return Session(StftPassthroughProcessor)


def open_session(config: SessionConfig, say: Callable[[str], None] | None = None) -> Session:
    """Resolve and load the bundle, open its backend, build one processor to prove it can be built.

    ``say`` gets the lines a user should see (the backend chosen, the model); default: stderr.
    A model spec that resolves to nothing (no models/default, or "passthrough") is the DSP passthrough.
    """
    from export.bundle import load_bundle, resolve
    from realtime.backends.choose import choose_backend

    tell = say or _stderr
    path = resolve(config.model)
    if path is None:
        return passthrough_session()
    bundle = load_bundle(path)
    backend = choose_backend(bundle, config.backend, say=tell, precision=config.precision)
    tell(f"model {bundle.describe()}")
    factory = ModelFactory(bundle, backend, config.harmonic, config.denoiser_input)
    factory()  # a processor that cannot be built (unknown sampler, bad emit) fails here, not in the engine
    return Session(factory, bundle)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)
