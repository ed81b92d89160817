"""The `stylehost` console command: one argparse tree, handlers imported lazily so --help is instant.

Every handler raises StylehostError for user mistakes; main() prints it on one line and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from diffusion.errors import StylehostError

Handler = Callable[[argparse.Namespace], int]
# Each entry: (command path, help, function adding arguments, "module:function" handler).
_COMMANDS: list[tuple[tuple[str, ...], str, Callable[[argparse.ArgumentParser], None], str]] = []


def command(path: tuple[str, ...], help_text: str, handler: str) -> Callable:
    """Register a subcommand; the decorated function adds its arguments to the parser."""

    def register(add_args: Callable[[argparse.ArgumentParser], None]) -> Callable:
        _COMMANDS.append((path, help_text, add_args, handler))
        return add_args

    return register


@command(("data", "render"), "render the paired multi-style dataset with FluidSynth", "diffusion.data:cli_render")
def _data_render_args(p: argparse.ArgumentParser) -> None:
    from diffusion.data import add_render_arguments

    add_render_arguments(p)


@command(("eval",), "score models against baselines on the test split", "diffusion.eval:cli_eval")
def _eval_args(p: argparse.ArgumentParser) -> None:
    from diffusion.eval import add_eval_arguments

    add_eval_arguments(p)


@command(("train",), "train the style-transfer teacher (resumes an existing run folder)", "diffusion.train:cli_train")
def _train_args(p: argparse.ArgumentParser) -> None:
    from diffusion.train import add_train_arguments

    add_train_arguments(p)


@command(("distill",), "distil the teacher into a few-step consistency student (resumes a run folder)",
         "diffusion.distill:cli_distill")
def _distill_args(p: argparse.ArgumentParser) -> None:
    from diffusion.distill import add_distill_arguments

    add_distill_arguments(p)


@command(("causal-distill",), "regress a causal streaming student onto a windowed one (issue 17; resumes)",
         "diffusion.causal_distill:cli_causal_distill")
def _causal_distill_args(p: argparse.ArgumentParser) -> None:
    from diffusion.causal_distill import add_causal_distill_arguments

    add_causal_distill_arguments(p)


@command(("distill-report",), "teacher vs undistilled DDIM vs students: quality and ONNX ms per window",
         "diffusion.distill_report:cli_distill_report")
def _distill_report_args(p: argparse.ArgumentParser) -> None:
    from diffusion.distill_report import add_report_arguments

    add_report_arguments(p)


@command(("guide-train",), "train the GuideDiff-style spectrogram-to-audio stage (resumes a run folder)",
         "diffusion.guide_train:cli_guide_train")
def _guide_train_args(p: argparse.ArgumentParser) -> None:
    from diffusion.guide_train import add_guide_train_arguments

    add_guide_train_arguments(p)


@command(("guide-report",), "spectrogram-to-audio stages compared on the test split: quality, ms, latency",
         "diffusion.guide_report:cli_guide_report")
def _guide_report_args(p: argparse.ArgumentParser) -> None:
    from diffusion.guide_report import add_report_arguments

    add_report_arguments(p)


@command(("gate-fit",), "fit the input gate (input or its excitation, per call) and write it into a bundle",
         "diffusion.gate_fit:cli_gate_fit")
def _gate_fit_args(p: argparse.ArgumentParser) -> None:
    from diffusion.gate_fit import add_gate_fit_arguments

    add_gate_fit_arguments(p)


@command(("devices",), "list audio devices with host API and channels", "realtime.commands:cli_devices")
def _devices_args(p: argparse.ArgumentParser) -> None:
    pass


@command(("live",), "restyle live audio from an input device to an output device", "realtime.commands:cli_live")
def _live_args(p: argparse.ArgumentParser) -> None:
    from realtime.commands import add_live_arguments

    add_live_arguments(p)


@command(("render",), "restyle a file through the real-time engine", "realtime.commands:cli_render")
def _render_args(p: argparse.ArgumentParser) -> None:
    from realtime.commands import add_render_arguments

    add_render_arguments(p)


@command(("bench", "latency"), "measure end-to-end latency through a JACK server", "benchmarks.latency:cli_latency")
def _bench_latency_args(p: argparse.ArgumentParser) -> None:
    from benchmarks.latency import add_arguments

    add_arguments(p)


@command(("gui",), "open the performer's panel (PyQt6): devices, styles, mix pad, meters", "gui.app:cli_gui")
def _gui_args(p: argparse.ArgumentParser) -> None:
    from gui.app import add_gui_arguments

    add_gui_arguments(p)


@command(("export", "onnx"), "export a model file to a checked ONNX bundle folder", "export.cli:cli_export_onnx")
def _export_onnx_args(p: argparse.ArgumentParser) -> None:
    from export.cli import add_onnx_arguments

    add_onnx_arguments(p)


@command(("export", "quantize"), "add an int8 denoiser (calibrated on real windows) to a bundle, for the CPU",
         "realtime.backends.quantize:cli_quantize")
def _export_quantize_args(p: argparse.ArgumentParser) -> None:
    from realtime.backends.quantize import add_quantize_arguments

    add_quantize_arguments(p)


@command(("export", "tensorrt"), "build cached fp16 TensorRT engines for a bundle (NVIDIA GPU)",
         "realtime.backends.parity:cli_export_tensorrt")
def _export_tensorrt_args(p: argparse.ArgumentParser) -> None:
    from export.cli import add_tensorrt_arguments

    add_tensorrt_arguments(p)


@command(("models",), "list model bundles (repo models/, user folder) with styles and latency", "export.cli:cli_models")
def _models_args(p: argparse.ArgumentParser) -> None:
    from export.cli import add_models_arguments

    add_models_arguments(p)


@command(("bench", "gpu"), "on an NVIDIA GPU: build TensorRT, check parity, time the backends",
         "benchmarks.gpu_check:cli_gpu_check")
def _bench_gpu_args(p: argparse.ArgumentParser) -> None:
    from benchmarks.gpu_check import add_arguments

    add_arguments(p)


@command(("bench", "quality"), "the eval tables (baselines, teacher, students) on the test split -> benchmarks/results",
         "benchmarks.quality:cli_quality")
def _bench_quality_args(p: argparse.ArgumentParser) -> None:
    from benchmarks.quality import add_arguments

    add_arguments(p)


@command(("bench", "report"), "generate benchmarks/RESULTS.md and its plots from benchmarks/results/*.json",
         "benchmarks.results:cli_report")
def _bench_report_args(p: argparse.ArgumentParser) -> None:
    from benchmarks.results import add_arguments

    add_arguments(p)


def _chosen_path(argv: Sequence[str]) -> tuple[str, ...] | None:
    """The registered command path that argv starts with ('bench latency ...' -> ("bench", "latency"))."""
    words = []
    for word in argv:
        if word.startswith("-"):
            break
        words.append(word)
    for path, *_ in _COMMANDS:
        if tuple(words[: len(path)]) == path:
            return path
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command tree; only the chosen leaf gets its arguments (and imports its module).

    Why: adding a leaf's arguments imports the module that defines them (the panel's pulls in PyQt6,
    training's pulls in torch), so building every leaf made even `stylehost --help` take 2 s, and a
    Ctrl-C in that time gave a raw traceback. With ``argv=None`` every leaf is built (for docs, tests).
    """
    chosen = _chosen_path(argv) if argv is not None else None
    parser = argparse.ArgumentParser(
        prog="stylehost", description="Real-time music style transfer with distilled diffusion models."
    )
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {
        (): parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    }
    parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for path, help_text, add_args, handler in _COMMANDS:
        for depth in range(1, len(path)):
            prefix = path[:depth]
            if prefix not in parsers:
                sub = groups[path[: depth - 1]].add_parser(path[depth - 1], help=f"{path[depth - 1]} commands")
                parsers[prefix] = sub
                groups[prefix] = sub.add_subparsers(dest=f"command_{depth}", metavar="COMMAND", required=True)
        leaf = groups[path[:-1]].add_parser(path[-1], help=help_text, description=help_text)
        if argv is None or path == chosen:  # audit: cli-builds-only-the-chosen-leaf
            add_args(leaf)
        leaf.set_defaults(_handler=handler)
    return parser


def _resolve(handler: str) -> Handler:
    import importlib

    module, func = handler.split(":")
    return getattr(importlib.import_module(module), func)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run the handler, and turn user errors and Ctrl-C into one line (exit 2 / 130)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:  # audit: cli-main-try
        args = build_parser(argv).parse_args(argv)  # audit: cli-parse
        return int(_resolve(args._handler)(args) or 0)
    except StylehostError as exc:
        print(f"stylehost: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # also while a handler's module is still importing
        print("stylehost: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

