"""Handlers for `stylehost devices`, `live` and `render` (arguments are defined in stylehost/cli.py).

`--model` picks a bundle (a path, a name under models/ or the user folder, or `passthrough`); with
no `--model`, the repo's `models/default` is used when it exists. Without a bundle, `live` and
`render` run the STFT passthrough and say so loudly: a user must never mistake the DSP stand-in
for restyling. Both open their bundle with realtime.session.open_session, as the panel and its engine
process do; `--style` is checked there, against the bundle's own styles.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from diffusion.excitation import PLAYED_INPUTS
from diffusion.styles import STYLE_NAMES
from realtime.argtypes import ranged_float, ranged_int
from realtime.backends.choose import NAMES as BACKENDS
from realtime.params import CALLBACK_PROCESS, EngineParams
from realtime.processor import Processor
from realtime.session import ModelFactory, Session, SessionConfig, open_session, passthrough_session

PRECISIONS = ("auto", "fp32", "fp16", "int8")  # int8: the CPU backend; fp16: torch-cuda (TensorRT picks its own)
PASSTHROUGH_NOTICE = (
    "NOTE: no model bundle loaded: running a DSP passthrough (STFT -> iSTFT, unity gain). "
    "This is NOT style transfer; the output is the input, delayed."
)
# Option ranges, checked at the parser (one line, exit 2; realtime/argtypes.py). Blocks: no device runs
# a useful callback below 16 samples; live above 8192 (170 ms at 48 kHz) is no longer live; a render
# block above 65536 buys nothing and costs memory (1000000 took 83 s and 1.1 GB for a 4-s file).
# Rates: what sound cards offer. Channels: what a multichannel interface offers (LiveSession also
# refuses more than the devices have).
STEPS_MAX = 64  # the parser's bound; a bundle may support fewer
LIVE_BLOCKSIZE = (16, 8192)
RENDER_BLOCKSIZE = (16, 65536)
SAMPLE_RATES = (8000, 192000)
CHANNELS = (1, 32)
MARGIN_MS = (0.0, 100.0)


def _span(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:g}, {bounds[1]:g}]"


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by live and render."""
    p.add_argument("--style", required=True,
                   help=f"target style: one the bundle has (the built-in ones: {', '.join(STYLE_NAMES)})")
    p.add_argument("--model", default=None,
                   help="model bundle: folder, manifest or name (`stylehost models`); default: models/default if "
                        "it exists; 'passthrough' = DSP passthrough")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="inference backend for --model")
    p.add_argument("--steps", type=ranged_int(1, STEPS_MAX), default=None,  # audit: option-steps-range
                   help=f"diffusion sampling steps in [1, {STEPS_MAX}] (default: the model's recommended, from its "
                        "manifest)")
    # audit: option-strength-range
    p.add_argument("--strength", type=ranged_float(0.0, 1.0, lo_open=True), default=None,
                   help="transfer strength in (0, 1] (default: the model's recommended, from its manifest)")
    # audit: option-wet-range
    p.add_argument("--wet", type=ranged_float(0.0, 1.0), default=1.0, help="wet/dry mix in [0, 1]")
    p.add_argument("--no-match-level", dest="match_level", action="store_false",
                   help="play the model at its own loudness (default: the wet follows the input's level over ~1 s)")
    p.add_argument("--stereo", default="mid", choices=("mid", "per-channel"), help="how mono models see stereo")
    p.add_argument("--harmonic", action="store_true",
                   help="the spectrogram-to-audio stage shapes a harmonic series at the input's pitch instead of the "
                        "input itself, so a whistle or a sine gets the target's partials (docs/timbre.md; about "
                        "1.3 ms more per 8 ms call on the 2-core dev CPU)")
    p.add_argument("--denoiser-input", default="bundle", choices=("bundle", *PLAYED_INPUTS),
                   help="what the model hears: the input (source), its harmonic excitation (excitation: only the "
                        "input's pitch and loudness, as a 1/k harmonic series; much closer partials for whistles, "
                        "sines and synths, a little further for real instruments, docs/timbre.md; needs a bundle with "
                        "an excitation or --harmonic), both (only a bundle trained on both: the input and its "
                        "excitation), gated (per call a blend of the two, weighted by how far the bundle's input gate "
                        "expects the excitation to help; needs a bundle with an input_gate; how models/default plays), "
                        "or what the bundle says (bundle, the default)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="the denoiser's precision: on the CPU backend int8 (about twice as fast; the bundle's "
                        "denoiser_int8 graph from `stylehost export quantize`), fp32, or auto (int8 when the bundle "
                        "has it); on torch-cuda fp16, fp32, or auto (fp16 where it matches fp32 within tolerance)")


def add_callback_arguments(p: argparse.ArgumentParser) -> None:
    """Where the audio callback and the worker run: shared by `live` and `bench latency`."""
    p.add_argument("--callback-process", action=argparse.BooleanOptionalAction, default=CALLBACK_PROCESS,
                   help="run the audio callback in a process of its own that holds only the shared rings "
                        "(realtime/device_process.py, docs/live.md); --no-callback-process: in the worker's process")
    p.add_argument("--pin-cpus", action="store_true",
                   help="keep the worker on the last CPU and, with --callback-process, the audio callback (and a "
                        "private JACK server the benchmark starts) on the others")
    p.add_argument("--spin-ms", type=ranged_float(0.0, 100.0), default=0.0,
                   help="the worker polls this long for the next block before it sleeps, 0 to 100 (default 0): a "
                        "core that sleeps between strides wakes cold and the next call is slower; costs a busy core "
                        "(on 2 vCPUs JACK's xruns rose: docs/live.md)")


def add_live_arguments(p: argparse.ArgumentParser) -> None:
    add_engine_arguments(p)
    p.add_argument("--input", default=None, help="input device: index or name (see `stylehost devices`)")
    p.add_argument("--output", default=None, help="output device: index or name")
    p.add_argument("--blocksize", type=ranged_int(*LIVE_BLOCKSIZE), default=256,  # audit: option-live-blocksize-range
                   help=f"callback block in samples, in {_span(LIVE_BLOCKSIZE)} (latency vs safety)")
    p.add_argument("--samplerate", type=ranged_int(*SAMPLE_RATES), default=None,  # audit: option-samplerate-range
                   help=f"device rate in Hz, in {_span(SAMPLE_RATES)} (default: the device's own)")
    p.add_argument("--channels", type=ranged_int(*CHANNELS), default=None,  # audit: option-channels-range
                   help=f"channels to open, in {_span(CHANNELS)}; the devices must have them (default: up to 2)")
    p.add_argument("--margin-ms", type=ranged_float(*MARGIN_MS), default=None,  # audit: option-margin-range
                   help=f"compute margin added to the latency, in {_span(MARGIN_MS)} ms (default: the bundle's "
                        "recommended one, manifest defaults.margin_ms, else 6)")
    add_callback_arguments(p)
    p.add_argument("--seconds", type=ranged_float(0.0, None, lo_open=True), default=None,  # audit: option-seconds-range
                   help="stop after this long, > 0 (default: until Ctrl-C)")


def add_render_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="input audio file (any format soundfile reads)")
    p.add_argument("output", help="output audio file, same length and sample rate as the input")
    add_engine_arguments(p)
    # audit: option-render-blocksize-range
    p.add_argument("--blocksize", type=ranged_int(*RENDER_BLOCKSIZE), default=1024,
                   help=f"block size fed to the engine, in {_span(RENDER_BLOCKSIZE)}")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def params_from_args(args: argparse.Namespace,
                     session: Session | Callable[[], Processor] | None = None) -> EngineParams:
    """The user's controls, checked against the session's bundle; steps and strength not given on the
    command line come from the bundle. ``session`` may also be a bare factory (benchmarks/latency.py)."""
    return _as_session(session).params(args.style, args.steps, args.strength, args.wet,
                                       getattr(args, "match_level", True))


def model_defaults(session: Session | Callable[[], Processor] | None) -> dict[str, float | int]:
    """Recommended steps/strength of the session's bundle (the passthrough ignores them)."""
    return _as_session(session).defaults


def processor_factory(model: str | None, backend: str, harmonic: bool = False,
                      precision: str = "auto") -> tuple[Callable[[], Processor], bool]:
    """(factory, is_passthrough) of ``open_session``, for the benchmarks that still take a bare factory
    (benchmarks/latency.py, benchmarks/soak.py); the front ends call realtime.session.open_session."""
    session = open_session(SessionConfig(model, backend, harmonic, precision))
    return session.factory, session.passthrough


def _as_session(session: Session | Callable[[], Processor] | None) -> Session:
    if isinstance(session, Session):
        return session
    if isinstance(session, ModelFactory):
        return Session(session, session.bundle)
    return passthrough_session() if session is None else Session(session)


def cli_devices(args: argparse.Namespace) -> int:
    from realtime.audio import list_devices

    devices = list_devices()
    if not devices:
        print("no audio devices: PortAudio sees no sound card and no audio server (JACK, PipeWire...)")
        return 0
    for d in devices:
        print(d.line())
    return 0


def cli_live(args: argparse.Namespace) -> int:
    from realtime.audio import LiveSession

    opened = open_session(SessionConfig(args.model, args.backend, args.harmonic, args.precision, args.denoiser_input))
    params = params_from_args(args, opened)
    passthrough = opened.passthrough
    session = LiveSession(
        opened.factory,
        input=args.input,
        output=args.output,
        samplerate=args.samplerate,
        blocksize=args.blocksize,
        channels=args.channels,
        stereo_mode=args.stereo,
        margin_ms=args.margin_ms if args.margin_ms is not None else opened.margin_ms,
        params=params,
        callback_process=args.callback_process,
        pin_cpus=args.pin_cpus,
        spin_ms=args.spin_ms,
    )
    if passthrough:
        print(PASSTHROUGH_NOTICE, file=sys.stderr)
    with session:
        engine = session.engine
        print(f"{session.device_name}: {engine.config.sample_rate} Hz, block {engine.config.blocksize}")
        print(f"latency {engine.latency.describe()}; Ctrl-C to stop")
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.25)
                session.check()  # the server or device went away: one error line, exit 2
                line = engine.status().line()
                if passthrough:
                    line += " | PASSTHROUGH"
                print("\r" + line, end="", flush=True)
        except KeyboardInterrupt:
            pass
        finally:
            print()  # end the status line before any error line
    return 0


def cli_render(args: argparse.Namespace) -> int:
    from realtime.render import Terminated, render_file, terminations_raise

    opened = open_session(SessionConfig(args.model, args.backend, args.harmonic, args.precision, args.denoiser_input))
    params = params_from_args(args, opened)
    if opened.passthrough:
        print(PASSTHROUGH_NOTICE, file=sys.stderr)
    try:
        # audit: render-signal-cleanup
        with terminations_raise():  # SIGTERM/SIGHUP clean up like Ctrl-C: no temp file left beside OUT
            result = render_file(
                args.input,
                args.output,
                opened.factory,
                params=params,
                blocksize=args.blocksize,
                stereo_mode=args.stereo,
                progress=not args.no_progress,
            )
    except Terminated as exc:
        _say(f"stylehost: render {exc}; {args.output} was not written (an existing file is unchanged)")
        return 128 + exc.signum
    seconds = result.frames / result.sample_rate
    if result.bad_input:  # audit: render-reports-bad-input
        print(f"stylehost: replaced {result.bad_input} non-finite input samples (NaN/inf) with 0", file=sys.stderr)
    if result.faults:
        print(f"WARNING: the model failed {result.faults} time(s) ({result.last_error}); those parts are the dry "
              "input", file=sys.stderr)
    print(
        f"wrote {args.output}: {seconds:.2f} s, {result.sample_rate} Hz, {result.channels} ch "
        f"(engine latency {result.latency_samples} samples removed)"
    )
    return 0


def _say(line: str) -> None:
    """A last line on stderr that may be gone (SIGHUP: the terminal closed)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass
