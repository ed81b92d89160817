"""GPU check: on a machine with an NVIDIA GPU, build the TensorRT engines, check parity, time the backends.

    python -m benchmarks.gpu_check [--model BUNDLE] [--json gpu.json]      (or: stylehost bench gpu)

Installs nothing: it uses whatever onnxruntime(-gpu), tensorrt and cuda-python are already there and
records, per backend, either its figures or why it could not run. Without a bundle it exports a
tiny random one to a temporary folder (timings then describe that size, and say so). With no NVIDIA
GPU it stops with one line. Timings: batch-1 denoiser calls and whole ModelProcessor calls (4 Euler
steps, strength 0.7), after warm-up; parity against ONNX Runtime CPU on seeded inputs.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from diffusion.errors import StylehostError

BACKENDS = ("cpu", "cuda", "ort-tensorrt", "tensorrt")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="bundle (default: models/default, else a tiny random one)")
    p.add_argument("--json", default="gpu_check.json", help="where to write the results")
    p.add_argument("--calls", type=int, default=200, help="timed calls per backend")


def _gpu_description() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown (nvidia-smi failed: {exc})"
    return out.splitlines()[0] if out else "unknown"


def _bundle(spec: str | None, tmp: Path) -> tuple[Any, str]:
    from export.bundle import load_bundle, resolve

    path = resolve(spec)
    if path is not None:
        return load_bundle(path), "given"
    import torch

    from diffusion.checkpoint import save_model
    from diffusion.model import Denoiser, ModelConfig
    from export.onnx import export_bundle

    torch.manual_seed(0)
    d = Denoiser(ModelConfig())
    with torch.no_grad():  # move off the identity init (zeroed output conv), so parity means something
        for p in d.parameters():
            p.add_(0.02 * torch.randn_like(p))
    save_model(tmp / "random.pt", d)
    return export_bundle(tmp / "random.pt", tmp / "random"), "random weights, default size (no trained bundle)"


def _times(fn, calls: int, warmup: int = 20) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    t = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        t.append(1000.0 * (time.perf_counter() - t0))
    return {"p50_ms": float(np.median(t)), "p99_ms": float(np.percentile(t, 99)), "calls": calls}


def run_check(model: str | None, calls: int) -> dict[str, Any]:
    from export.gpu import gpu_present
    from export.tensorrt import parity_inputs
    from realtime.backends.choose import open_backend
    from realtime.backends.parity import compare
    from realtime.model_processor import ModelProcessor

    if why := gpu_present():
        raise StylehostError(f"gpu check: {why}; nothing to measure here (CPU figures: stylehost export onnx)")
    with tempfile.TemporaryDirectory() as tmp:
        bundle, origin = _bundle(model, Path(tmp))
        result: dict[str, Any] = {"gpu": _gpu_description(), "host": platform.node(), "bundle": bundle.name,
                                  "bundle_origin": origin, "bundle_digest": bundle.digest, "backends": {}}
        reference = open_backend(bundle, "cpu")
        feeds = parity_inputs(bundle)["denoiser"]
        window = (0.1 * np.random.default_rng(0).standard_normal(bundle.spectrogram.num_samples(bundle.window)))
        window = window.astype(np.float32)
        for name in BACKENDS:
            entry: dict[str, Any] = {}
            try:
                backend = open_backend(bundle, name)
                entry["description"] = backend.description
                if name != "cpu":
                    entry["parity_vs_ort_cpu"] = compare(reference, backend, bundle)
                entry["denoiser_batch1"] = _times(lambda b=backend: b.run("denoiser", *feeds), calls)
                proc = ModelProcessor(bundle, backend)
                proc.set_params(strength=0.7, steps=4)
                out = np.zeros(proc.stride, np.float32)
                entry["processor_call_4_steps"] = _times(lambda p=proc, o=out: p.process(window, o), calls)
                entry["stride_ms"] = 1000.0 * proc.stride / proc.sample_rate
            except StylehostError as exc:
                entry["error"] = str(exc)
            result["backends"][name] = entry
            print(f"{name:>13}: " + (entry.get("error") or
                  f"denoiser {entry['denoiser_batch1']['p50_ms']:.3f} ms, processor call "
                  f"{entry['processor_call_4_steps']['p50_ms']:.3f} ms (p50) | {entry['description']}"))
    return result


def cli_gpu_check(args: argparse.Namespace) -> int:
    result = run_check(args.model, args.calls)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json} ({result['gpu']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        return cli_gpu_check(parser.parse_args(argv))
    except StylehostError as exc:
        print(f"stylehost: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
