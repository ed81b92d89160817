"""ONNX Runtime ms per call: today's window denoiser against the causal streaming one (issue 17), interleaved.

    python -m benchmarks.causal_ms --profile --out benchmarks/results/causal_ms

Both networks at the shipped widths (ModelConfig()), untrained (timing does not depend on the weights), exported
to ONNX in a temporary folder and run on one ONNX Runtime CPU thread, as the engine runs its denoiser: the
window UNet on (1, 1, 64, 32) windows, the causal one on ``--frames`` new frames with its state carried from call
to call. Calls alternate (which goes first alternates too), so a loaded machine slows both alike; the ratio
is the figure to read. ``--out PREFIX`` writes PREFIX.json and PREFIX.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.machine import machine_info
from diffusion.causal import CausalDenoiser, State, frame_macs
from diffusion.files import write_json_and_markdown
from diffusion.model import Denoiser, ModelConfig, count_macs
from export.streaming import StreamStep


def _session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def export_both(folder: Path, frames: int) -> tuple[Any, Any, list[str], State]:
    """(window session, causal session, the causal graph's state input names, its initial state)."""
    cfg = ModelConfig()
    torch.manual_seed(0)
    unet, causal = Denoiser(cfg).eval(), CausalDenoiser(cfg).eval()
    x = torch.zeros(1, 1, cfg.n_mels, cfg.window)
    style = torch.zeros(1, cfg.emb_dim)
    with torch.no_grad():
        torch.onnx.export(unet, (x, torch.ones(1), x, style), folder / "unet.onnx", dynamo=False,
                          input_names=["x", "sigma", "source", "style"], output_names=["x0"], opset_version=17)
        state = causal.init_state()
        names = [f"state{i}" for i in range(len(state))]
        new = torch.zeros(1, 1, cfg.n_mels, frames)
        torch.onnx.export(StreamStep(causal), (new, torch.ones(1), new, style, *state), folder / "causal.onnx",
                          dynamo=False, input_names=["x", "sigma", "source", "style", *names],
                          output_names=["x0", *[f"new_{n}" for n in names]], opset_version=17)
    return _session(folder / "unet.onnx"), _session(folder / "causal.onnx"), names, state


def op_profile(calls: int, frames: int) -> dict[str, float]:
    """ms per causal call spent in each ONNX op type (ONNX Runtime's own profiler, its file deleted): where an
    op-bound graph's time goes. Largest first."""
    import onnxruntime as ort

    cfg = ModelConfig()
    with tempfile.TemporaryDirectory() as tmp:
        _, _, names, state0 = export_both(Path(tmp), frames)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        sess = ort.InferenceSession(str(Path(tmp) / "causal.onnx"), opts, providers=["CPUExecutionProvider"])
        new = np.zeros((1, 1, cfg.n_mels, frames), np.float32)
        feeds = {"x": new, "sigma": np.ones(1, np.float32), "source": new,
                 "style": np.zeros((1, cfg.emb_dim), np.float32)}
        state = [s.numpy() for s in state0]
        for _ in range(calls):
            state = sess.run(None, {**feeds, **dict(zip(names, state, strict=True))})[1:]
        events = json.loads(Path(sess.end_profiling()).read_text())
    totals: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"]["op_name"]
            totals[op] = totals.get(op, 0.0) + e["dur"] / 1000.0 / calls
    return dict(sorted(((k, round(v, 4)) for k, v in totals.items()), key=lambda kv: -kv[1]))


def measure(calls: int, frames: int) -> dict[str, Any]:
    cfg = ModelConfig()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        unet, causal, names, state0 = export_both(Path(tmp), frames)
        win = rng.standard_normal((1, 1, cfg.n_mels, cfg.window)).astype(np.float32)
        sigma, style = np.ones(1, np.float32), np.zeros((1, cfg.emb_dim), np.float32)
        new = rng.standard_normal((1, 1, cfg.n_mels, frames)).astype(np.float32)
        state = [s.numpy() for s in state0]
        times: dict[str, list[float]] = {"window": [], "causal": []}

        def run_window() -> None:
            t0 = time.perf_counter()
            unet.run(None, {"x": win, "sigma": sigma, "source": win, "style": style})
            times["window"].append(1000.0 * (time.perf_counter() - t0))

        def run_causal() -> None:
            nonlocal state
            t0 = time.perf_counter()
            out = causal.run(None, {"x": new, "sigma": sigma, "source": new, "style": style,
                                    **dict(zip(names, state, strict=True))})
            times["causal"].append(1000.0 * (time.perf_counter() - t0))
            state = out[1:]

        for i in range(calls + 20):
            for run in ((run_window, run_causal) if i % 2 else (run_causal, run_window)):
                run()
    stats = {}
    for name, values in times.items():
        v = np.array(values[20:])
        stats[name] = {"p50_ms": float(np.percentile(v, 50)), "p99_ms": float(np.percentile(v, 99)),
                       "mean_ms": float(v.mean())}
    causal_macs = frame_macs(CausalDenoiser(cfg)) * frames
    return {
        "calls": calls, "frames_per_causal_call": frames, "window_frames": cfg.window, "onnxruntime_threads": 1,
        "window": {**stats["window"], "macs": count_macs(Denoiser(cfg))},
        "causal": {**stats["causal"], "macs": causal_macs},
        "ratio_p50": stats["window"]["p50_ms"] / stats["causal"]["p50_ms"],
        "ratio_mean": stats["window"]["mean_ms"] / stats["causal"]["mean_ms"],
    }


def markdown(r: dict[str, Any]) -> str:
    rows = [f"| {name} | {r[name]['macs'] / 1e6:.1f} M | {r[name]['p50_ms']:.3f} | {r[name]['p99_ms']:.3f} | "
            f"{r[name]['mean_ms']:.3f} |" for name in ("window", "causal")]
    return "\n".join([
        "# Window denoiser vs causal streaming denoiser, ONNX Runtime, 1 thread",
        "",
        f"`python -m benchmarks.causal_ms`: {r['calls']} interleaved calls each; window = today's UNet on "
        f"{r['window_frames']} frames, causal = {r['frames_per_causal_call']} new frames with the state carried.",
        "",
        "| denoiser call | MACs | p50 ms | p99 ms | mean ms |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Window / causal: p50 {r['ratio_p50']:.2f}x, mean {r['ratio_mean']:.2f}x.",
        "",
        *([f"Causal call by ONNX op type (ms per call, profiler on, {r['frames_per_causal_call']} frames): "
           + ", ".join(f"{op} {ms:.3f}" for op, ms in r["op_profile_ms"].items()), ""]
          if "op_profile_ms" in r else []),
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=500, help="timed calls of each (after 20 left out)")
    p.add_argument("--frames", type=int, default=2, help="new frames per causal call (today's emit: 2)")
    p.add_argument("--profile", action="store_true", help="also time the causal call by ONNX op type")
    p.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    machine = machine_info()  # at the start: its load average says whether the run had the machine to itself
    result = {**measure(args.calls, args.frames), "machine": machine}
    if args.profile:
        result["op_profile_ms"] = op_profile(args.calls, args.frames)
    text = markdown(result)
    print(text)
    if args.out is not None:
        write_json_and_markdown(args.out, result, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
