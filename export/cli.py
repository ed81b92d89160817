"""Arguments and handlers of `stylehost export onnx` and `stylehost models`, and the arguments of
`stylehost export tensorrt` (its handler compares backends, so it lives in realtime/backends/parity.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffusion.errors import StylehostError


def add_onnx_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model file (runs/NAME/model.pt) or training checkpoint")
    p.add_argument("--out", required=True, help="bundle folder to write, e.g. models/default")
    p.add_argument("--name", default=None, help="model name in the manifest (default: the folder name)")
    p.add_argument("--version", default=None, help="model version (default: date + model.pt hash)")
    p.add_argument("--audio", default=None, help="audio for the real-window parity check (default: the demo clip)")
    p.add_argument("--no-torch-weights", action="store_true", help="leave model.pt out (no torch backend)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    p.add_argument("--stage", default=None,
                   help="learned spectrogram-to-audio stage (`stylehost guide-train` RUN/model.pt) exported as "
                        "the resynth graph (default: source-phase resynthesis)")
    p.add_argument("--stage-steps", type=int, default=1, help="InDI steps of the stage (1 or 2; default 1)")
    p.add_argument("--frames-per-call", type=int, default=2,
                   help="a causal model (model.causal) is exported as a streaming bundle that takes this many "
                        "new frames per call, its state in and out of the graph (default 2; needs --stage)")
    p.add_argument("--lookahead", type=int, default=None,
                   help="play a window model with this many look-ahead frames, fewer than it was trained with: "
                        "one hop (4 ms) less latency each; `stylehost eval --lookahead` measures the cost")
    p.add_argument("--window", type=int, default=None,
                   help="play a window model on this many frames per call, fewer than it was trained with: "
                        "a call costs about its length; `stylehost eval --window` measures the cost")
    p.add_argument("--excitation-lag", type=int, default=None, choices=(0, 1),
                   help="hops the live harmonic excitation runs behind the input (default: the stage's, 1); 0 "
                        "lets a stage with no after-frame play at --lookahead 0 (or after a causal model with no "
                        "look-ahead), 4 ms sooner, its pitch 4 ms later")
    p.add_argument("--condition-graph", action=argparse.BooleanOptionalAction, default=True,
                   help="a causal model's sigma- and style-only work (its FiLM) as a graph of its own, run when the "
                        "style or schedule changes (default); --no-condition-graph: inside the per-call denoiser, "
                        "as bundles before 2026-12-07")
    p.add_argument("--keep-sections", default=None, metavar="NAMES",
                   help="with --force: manifest sections of the bundle being replaced to carry over, "
                        "e.g. eval,defaults,distill,reconstruction")


def cli_export_onnx(args: argparse.Namespace) -> int:
    from diffusion.config import parse_list
    from export.bundle import load_bundle, update_manifest
    from export.onnx import export_bundle

    kept = {}
    if args.keep_sections:
        names = parse_list(args.keep_sections, str, "keep-sections")
        old = load_bundle(Path(args.out)).manifest if Path(args.out).exists() else {}
        kept = {name: old[name] for name in names if name in old}
    from diffusion.checkpoint import load_checkpoint, model_config_of

    if model_config_of(load_checkpoint(Path(args.model))).causal is not None:
        return _export_streaming(args, kept)
    if not args.condition_graph:
        raise StylehostError(f"{args.model} is a window model: --no-condition-graph applies to causal streaming models")
    bundle = export_bundle(Path(args.model), Path(args.out), name=args.name, version=args.version,
                           audio_path=Path(args.audio) if args.audio else None,
                           torch_weights=not args.no_torch_weights, force=args.force,
                           stage_path=Path(args.stage) if args.stage else None, stage_steps=args.stage_steps,
                           lookahead=args.lookahead, window=args.window, excitation_lag=args.excitation_lag)
    if kept:
        bundle = update_manifest(bundle.path, kept)
        print(f"carried over manifest sections: {', '.join(kept)}")
    parity = bundle.manifest["parity"]
    figures = ", ".join(f"{g} {max(parity[g].values()):.1e}" for g in ("denoiser", "frontend", "resynth"))
    bench = bundle.manifest["benchmark"]
    print(f"wrote {bundle.describe()}")
    print(f"parity vs torch (max abs, random and real windows; tolerance {parity['tolerance']:g}): {figures}")
    print(f"denoiser {bench['denoiser_ms_p50']:.2f} ms per call (p99 {bench['denoiser_ms_p99']:.2f}), "
          f"resynth {bench['resynth_ms_p50_emit2']:.3f} ms per 2-frame call, {bench['runtime']}")
    stage = bundle.manifest.get("resynth_stage")
    if stage:
        print(f"resynth graph: learned stage, {stage['steps']} step(s), reads {stage['context_before']} frames "
              f"before / {stage['context_after']} after the emitted ones, adds {stage['added_latency_samples']} "
              "samples of latency")
    return 0


def _export_streaming(args: argparse.Namespace, kept: dict) -> int:
    """A causal model: export/streaming.py's bundle (the stage is required: it is the resynth graph)."""
    from export.bundle import update_manifest
    from export.streaming import export_streaming_bundle

    if not args.stage:
        raise StylehostError(f"{args.model} is a causal streaming model: pass its spectrogram-to-audio --stage")
    if args.lookahead is not None:
        raise StylehostError(f"{args.model} is a causal streaming model: its look-ahead is fixed by its training")
    if args.window is not None:
        raise StylehostError(f"{args.model} is a causal streaming model: it carries its state, it reads no window")
    bundle = export_streaming_bundle(Path(args.model), Path(args.out), Path(args.stage), frames=args.frames_per_call,
                                     name=args.name, version=args.version,
                                     audio_path=Path(args.audio) if args.audio else None,
                                     stage_steps=args.stage_steps, force=args.force,
                                     excitation_lag=args.excitation_lag, condition_graph=args.condition_graph)
    if kept:
        bundle = update_manifest(bundle.path, kept)
    bench, parity = bundle.manifest["benchmark"], bundle.manifest["parity"]
    print(f"wrote {bundle.describe()}")
    print(f"streaming: {bundle.emit} frames per call, state carried in the graph; parity vs torch (max abs, "
          f"random inputs and a real clip streamed call by call): denoiser "
          f"{max(parity['denoiser'].values()):.1e}, tolerance {parity['tolerance']:g}")
    print(f"denoiser {bench['denoiser_ms_p50']:.2f} ms per call (p99 {bench['denoiser_ms_p99']:.2f}), "
          f"{bench['runtime']}")
    return 0


def add_tensorrt_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="bundle folder or name (default: models/default)")
    p.add_argument("--rebuild", action="store_true", help="ignore the engine cache")


def add_models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", default=[], metavar="PATH", help="also list this bundle")


def cli_models(args: argparse.Namespace) -> int:
    from export.bundle import discover, load_bundle, search_dirs

    found = discover()
    for extra in args.model:
        try:
            found.append((Path(extra), load_bundle(extra)))
        except StylehostError as exc:
            found.append((Path(extra), exc))
    if not found:
        where = ", ".join(str(d) for d in search_dirs())
        print(f"no model bundles in {where}; export one with "
              "`stylehost export onnx --model runs/teacher/model.pt --out models/default`")
        return 0
    for path, item in found:
        if isinstance(item, StylehostError):
            print(f"{path.name:<16} INVALID  {item}")
        else:
            kind = f"streaming, {item.emit} frames per call" if item.streaming is not None else "window"
            if item.denoiser_input != "source":  # what the denoiser hears: the input unless the bundle says
                kind += f", hears {item.denoiser_input}"
            print(f"{item.name:<16} {item.version:<18} styles {', '.join(item.styles)} | latency "
                  f"{item.latency_samples} samples ({item.latency_ms:.1f} ms, {kind}) | {path}")
            if item.summary:
                print(f"    {item.summary}")
    return 0
