"""GPU check: one prepared run on a machine with an NVIDIA GPU; facts, parity, timings, a recommendation.

    python -m benchmarks.gpu_check [--model BUNDLE] [--json gpu_check.json]      (or: stylehost bench gpu)
    python -m benchmarks.gpu_check --dry-run --json dry.json                      (the same run on the CPU)

One go, at most ``--budget-s`` (8 minutes): the machine's facts (GPU, driver, torch and its CUDA,
onnxruntime and its providers, TensorRT if any); per backend it can open (ONNX Runtime CPU as the
reference, torch-cuda in fp16 and fp32, ONNX Runtime's CUDA and TensorRT providers, native TensorRT)
either the reason it cannot, or its parity against ONNX Runtime CPU on seeded inputs, batch-1 denoiser
call times and whole ModelProcessor call times (p50/p99/max over ``--calls``) at 1-4 steps and each emit
it tries; then the recommended steps and emit per backend (rule: ``recommend``); and, where ``jackd`` is
installed, an end-to-end ``stylehost bench latency`` through a dummy JACK server. Installs and downloads
nothing. Without a bundle it exports a random one of the default size (the timings then say so).

``--dry-run`` runs the very same code with the CPU backends only (torch-cuda's static-buffer path on the
CPU stands in for its CUDA graphs), so the one GPU run cannot fail on a typo; tests run it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from diffusion.errors import StylehostError

# (label, backend name, precision): what the check tries on a GPU, the one that surely runs first, the CPU
# reference last and with at most CPU_CALLS calls (its 12 sweeps would take minutes of the budget otherwise).
GPU_BACKENDS = (("torch-cuda fp16", "torch-cuda", "auto"), ("torch-cuda fp32", "torch-cuda", "fp32"),
                ("cuda", "cuda", "fp32"), ("ort-tensorrt", "ort-tensorrt", "fp32"), ("tensorrt", "tensorrt", "fp32"),
                ("cpu", "cpu", "fp32"))
CPU_CALLS = 200
DRY_BACKENDS = (("cpu", "cpu", "fp32"), ("torch-cuda (CPU dry run)", "torch-cuda@cpu", "auto"))
STEPS = (1, 2, 3, 4)
HEADROOM = 0.5  # a setting is recommended when its processor-call p99 takes at most this share of the stride
BUDGET_S = 480.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="bundle (default: models/default, else a random one)")
    p.add_argument("--json", default="gpu_check.json", help="where to write the results")
    p.add_argument("--calls", type=int, default=None,
                   help="timed calls per measurement (default 2000; 30 with --dry-run)")
    p.add_argument("--dry-run", action="store_true",
                   help="no GPU needed: the same run with the CPU backends only, to check the script itself")
    p.add_argument("--budget-s", type=float, default=BUDGET_S,
                   help="stop measuring (and say so in the results) once this many seconds have gone")
    p.add_argument("--latency-seconds", type=float, default=20.0,
                   help="length of the end-to-end bench latency run, where jackd is installed (0: skip)")


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({type(exc).__name__})"


def environment(dry_run: bool) -> dict[str, Any]:
    """Facts about the machine the figures come from; every probe reports its failure instead of raising."""
    facts: dict[str, Any] = {"host": platform.node(), "python": platform.python_version(),
                             "platform": platform.platform(), "cpus": os.cpu_count()}
    if shutil.which("nvidia-smi"):
        facts["nvidia_smi"] = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
                                    "--format=csv,noheader"])
    try:
        import torch

        facts["torch"] = torch.__version__
        facts["torch_cuda"] = torch.version.cuda
        facts["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        if torch.cuda.is_available():
            facts["gpu"] = torch.cuda.get_device_name(0)
            facts["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
            facts["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    except ImportError as exc:
        facts["torch"] = f"not installed ({exc})"
    try:
        import onnxruntime

        facts["onnxruntime"] = onnxruntime.__version__
        facts["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError as exc:
        facts["onnxruntime"] = f"not installed ({exc})"
    try:
        import tensorrt

        facts["tensorrt"] = tensorrt.__version__
    except ImportError:
        facts["tensorrt"] = "not installed"
    if "gpu" not in facts:
        facts["gpu"] = "none (CPU dry run)" if dry_run else facts.get("nvidia_smi", "unknown").split(",")[0]
    return facts


def _bundle(spec: str | None, tmp: Path) -> tuple[Any, str]:
    from export.bundle import load_bundle, resolve

    path = resolve(spec)
    if path is not None:
        return load_bundle(path), "given" if spec else "models/default"
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


def timings(fn: Callable[[], Any], calls: int, warmup: int = 20) -> dict[str, float]:
    """p50/p99/max ms of ``fn`` over ``calls`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    t = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        fn()
        t[i] = 1000.0 * (time.perf_counter() - t0)
    return {"p50_ms": float(np.median(t)), "p99_ms": float(np.percentile(t, 99)), "max_ms": float(t.max()),
            "calls": calls}


def _tone_stream(window: int, stride: int, rate: int) -> Iterator[np.ndarray]:
    """Endless sliding windows over a 220 Hz tone with a little noise: pitched input, so the harmonic
    excitation runs on every hop, as when a player holds a note (silence would flatter the call)."""
    t = np.arange(rate * 4) / rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(0).standard_normal(len(t)))
    x = x.astype(np.float32)
    buf = np.zeros(window, np.float32)
    while True:
        for i in range(0, len(x) - stride, stride):
            buf[:-stride] = buf[stride:]
            buf[-stride:] = x[i : i + stride]
            yield buf


def recommend(sweep: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The setting to play: among those whose call p99 fits HEADROOM of the stride (the rest is left for
    stalls), the smallest emit (the least latency: the stride is waited for), then the most steps."""
    fits = [s for s in sweep if s["p99_ms"] <= HEADROOM * s["stride_ms"]]
    if not fits:
        return None
    best = min(fits, key=lambda s: (s["emit"], -s["steps"]))
    return {"steps": best["steps"], "emit": best["emit"], "p99_ms": best["p99_ms"], "stride_ms": best["stride_ms"],
            "rule": f"smallest emit, then most steps, with processor p99 <= {HEADROOM:.0%} of the stride"}


def _open(bundle: Any, name: str, precision: str) -> Any:
    from realtime.backends.choose import open_backend

    if name == "torch-cuda@cpu":
        from realtime.backends.torch_cuda import TorchCudaBackend

        return TorchCudaBackend(bundle, precision=precision, device="cpu")
    return open_backend(bundle, name, precision=precision)


def check_backend(bundle: Any, reference: Any, name: str, precision: str, calls: int,
                  deadline: float) -> dict[str, Any]:
    """One backend's entry: why it cannot run, or its parity, denoiser timings and processor sweep."""
    from export.tensorrt import parity_inputs
    from realtime.backends.parity import compare
    from realtime.model_processor import ModelProcessor

    entry: dict[str, Any] = {}
    try:
        backend = reference if name == "cpu" else _open(bundle, name, precision)
        entry["description"] = backend.description
        if backend is not reference:
            entry["parity_vs_ort_cpu"] = compare(reference, backend, bundle)
        feeds = parity_inputs(bundle)["denoiser"]
        entry["denoiser_batch1"] = timings(lambda: backend.run("denoiser", *feeds), calls)
        defaults = bundle.defaults
        sweep = []
        for emit in sorted({1, int(defaults["emit"]), bundle.emit}):
            proc = ModelProcessor(bundle, backend, emit=emit)  # with the bundle's excitation, as it plays
            tone = _tone_stream(proc.window, proc.stride, proc.sample_rate)
            out = np.zeros(proc.stride, np.float32)
            for steps in [s for s in STEPS if s <= bundle.max_steps]:
                if time.monotonic() > deadline:
                    entry["note"] = "sweep cut short: the time budget ran out"
                    break
                proc.set_params(strength=float(defaults["strength"]), steps=steps)
                figures = timings(lambda: proc.process(next(tone), out), calls)  # noqa: B023 - called at once
                sweep.append({"emit": emit, "steps": steps, "stride_ms": 1000.0 * proc.stride / proc.sample_rate,
                              **figures})
        entry["processor_sweep"] = sweep
        entry["recommended"] = recommend(sweep)
    except StylehostError as exc:
        entry["error"] = str(exc)
    return entry


def latency_run(model: Path, backend: str, precision: str, seconds: float, tmp: Path) -> dict[str, Any]:
    """End to end through a dummy JACK server, where jackd exists (the GPU machine may lack it)."""
    if seconds <= 0:
        return {"skipped": "--latency-seconds 0"}
    if shutil.which("jackd") is None:
        return {"skipped": "jackd is not installed here (Debian: jackd2; its .debs are small enough to bring)"}
    out = tmp / "latency.json"
    cmd = [sys.executable, "-m", "stylehost", "bench", "latency", "--model", str(model), "--backend", backend,
           "--precision", precision, "--blocksize", "128", "--seconds", f"{seconds:g}", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 240)
    if proc.returncode != 0 or not out.is_file():
        return {"command": " ".join(cmd[1:]), "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    data = json.loads(out.read_text())
    keep = ("end_to_end_latency_ms", "dropouts", "xruns", "compute_ms_p50", "compute_ms_p99", "backend")
    return {"command": " ".join(cmd[1:]), **{k: data.get(k) for k in keep}}


def _summary(entry: dict[str, Any]) -> str:
    if "error" in entry:
        return entry["error"]
    rec = entry["recommended"]
    pick = "none fits" if rec is None else f"{rec['steps']} steps, emit {rec['emit']}"
    return f"denoiser p50 {entry['denoiser_batch1']['p50_ms']:.3f} ms, recommended {pick} | {entry['description']}"


def run_check(model: str | None, calls: int | None, dry_run: bool = False, budget_s: float = BUDGET_S,
              latency_seconds: float = 20.0) -> dict[str, Any]:
    from export.gpu import gpu_present
    from realtime.backends.choose import open_backend

    if not dry_run and (why := gpu_present()):
        raise StylehostError(f"gpu check: {why}; nothing to measure here (the same run on the CPU: --dry-run)")
    started = time.monotonic()
    deadline = started + budget_s
    calls = calls or (30 if dry_run else 2000)
    with tempfile.TemporaryDirectory() as tmp:
        bundle, origin = _bundle(model, Path(tmp))
        facts = environment(dry_run)
        result: dict[str, Any] = {"dry_run": dry_run, "gpu": facts["gpu"], "environment": facts,
                                  "bundle": bundle.name, "bundle_origin": origin, "bundle_digest": bundle.digest,
                                  "calls": calls, "strength": bundle.defaults["strength"], "input": "220 Hz tone",
                                  "backends": {}}
        reference = open_backend(bundle, "cpu", precision="fp32")
        for label, name, precision in (DRY_BACKENDS if dry_run else GPU_BACKENDS):
            if time.monotonic() > deadline:
                result["backends"][label] = {"error": "not run: the time budget ran out"}
                continue
            n = calls if dry_run or name != "cpu" else min(calls, CPU_CALLS)
            entry = check_backend(bundle, reference, name, precision, n, deadline)
            result["backends"][label] = entry
            print(f"{label:>24}: {_summary(entry)}", flush=True)
        ran = [(label, e) for label, e in result["backends"].items() if "recommended" in e and label != "cpu"]
        fastest = min(ran, key=lambda le: le[1]["denoiser_batch1"]["p99_ms"], default=None)
        result["fastest"] = fastest[0] if fastest else None
        if fastest is not None:  # the dry run streams its CPU reference: the same command, another backend
            name, precision = ("cpu", "auto") if dry_run else next((n, p) for lab, n, p in GPU_BACKENDS
                                                                   if lab == fastest[0])
            result["latency"] = latency_run(bundle.path, name, precision, latency_seconds, Path(tmp))
        result["seconds"] = round(time.monotonic() - started, 1)
    return result


def cli_gpu_check(args: argparse.Namespace) -> int:
    result = run_check(args.model, args.calls, args.dry_run, args.budget_s, args.latency_seconds)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json} ({result['gpu']}, {result['seconds']} s)")
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
