"""TensorRT engines from a bundle's ONNX graphs, cached; the parity inputs and tolerances they are held to.

Written against TensorRT 10's documented Python API (tensor names, ``execute_async_v3``) and
cuda-python's runtime bindings. NOT RUN on the development machine (no GPU, and the ``tensorrt``
wheels fetch their libraries from NVIDIA's index, unreachable there): see docs/export.md.

- The denoiser is built in fp16 (it is where the time goes); the frontend and the resynthesis stay
  fp32 with TF32 off, because the log floor (1e-5) and STFT power sums fall outside what fp16 resolves.
- Engine cache: ``user_cache_dir("stylehost")/tensorrt/<key>/{graph}.plan`` with key = sha256 of
  (GPU name, TensorRT version, bundle digest): a new driver-visible GPU, TensorRT or bundle rebuilds;
  a timing cache per GPU + TensorRT version makes rebuilds of other bundles fast.
- Optimisation profiles: batch 1..8 (opt 1: the live engine runs one window per call), emitted frames
  1..window-lookahead (opt: the bundle's emit).
- `stylehost export tensorrt` (realtime/backends/parity.py) builds them and compares the TensorRT
  backend with ONNX Runtime CPU on ``parity_inputs``, within ``FP16_TOLERANCE`` / ``FP32_TOLERANCE``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from diffusion.errors import StylehostError
from diffusion.excitation import heard_channels
from export.bundle import GRAPHS, Bundle
from export.gpu import gpu_present

MAX_BATCH = 8
FP16_GRAPHS = ("denoiser",)
FP16_TOLERANCE = {"max_abs": 0.05, "mean_abs": 0.005}  # on normalised log-mel x0 (values ~1-3)
FP32_TOLERANCE = {"max_abs": 1e-3, "mean_abs": 1e-4}
INSTALL = ("pip install 'stylehost[tensorrt]' (the tensorrt wheels download their libraries from NVIDIA's "
           "index, pypi.nvidia.com) on a machine with an NVIDIA GPU and driver")


def import_tensorrt() -> tuple[Any, Any]:
    """(tensorrt, cudart) or one StylehostError saying what is missing and how to install it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise StylehostError(f"native TensorRT: the Python package 'tensorrt' is not installed ({exc}); "
                             f"{INSTALL}") from exc
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as exc:
            raise StylehostError(f"native TensorRT: the package 'cuda-python' is not installed; {INSTALL}") from exc
    if why := gpu_present():
        raise StylehostError(f"native TensorRT: {why}")
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count < 1:
        raise StylehostError(f"native TensorRT: CUDA sees no GPU ({err}); check the NVIDIA driver (nvidia-smi)")
    return trt, cudart


def cuda_check(result: tuple, what: str) -> Any:
    """cuda-python calls return (error, value...): raise on error, return the value(s)."""
    err, *rest = result
    if int(err) != 0:
        raise StylehostError(f"CUDA error in {what}: {err}")
    return rest[0] if len(rest) == 1 else tuple(rest)


def gpu_name(cudart: Any) -> str:
    props = cuda_check(cudart.cudaGetDeviceProperties(0), "cudaGetDeviceProperties")
    name = props.name
    return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).rstrip("\0").strip()


def cache_root() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("STYLEHOST_TRT_CACHE") or Path(user_cache_dir("stylehost")) / "tensorrt")


def cache_key(gpu: str, trt_version: str, bundle_digest: str) -> str:
    return hashlib.sha256(f"{gpu}|{trt_version}|{bundle_digest}".encode()).hexdigest()[:20]


def profile_shapes(bundle: Bundle, graph: str, name: str, shape: list) -> tuple[tuple, tuple, tuple]:
    """(min, opt, max) for one input: 'batch' in 1..MAX_BATCH, 'emit' in 1..window-lookahead; a learned
    resynth stage's 'context_frames' are emit + its context (export/bundle.py ``resynth_context``)."""
    ctx = sum(bundle.resynth_context)
    ranges = {"batch": (1, 1, MAX_BATCH), "emit": (1, bundle.emit, bundle.window - bundle.lookahead),
              "context_frames": (1 + ctx, bundle.emit + ctx, bundle.window - bundle.lookahead + ctx)}
    dims = [ranges[d] if isinstance(d, str) else (d, d, d) for d in shape]
    return tuple(d[0] for d in dims), tuple(d[1] for d in dims), tuple(d[2] for d in dims)


def build_engines(bundle: Bundle, rebuild: bool = False, log=print) -> dict[str, Path]:
    """Engine files for every graph of ``bundle``, from the cache or freshly built (minutes)."""
    trt, cudart = import_tensorrt()
    gpu = gpu_name(cudart)
    folder = cache_root() / cache_key(gpu, trt.__version__, bundle.digest)
    plans = {g: folder / f"{g}.plan" for g in GRAPHS}
    if not rebuild and all(p.is_file() for p in plans.values()):
        return plans
    folder.mkdir(parents=True, exist_ok=True)
    timing_path = cache_root() / f"timing-{cache_key(gpu, trt.__version__, '')}.cache"
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    for graph in GRAPHS:
        log(f"building TensorRT engine for {graph} on {gpu} (TensorRT {trt.__version__})...")
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(bundle.graph_path(graph).read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise StylehostError(f"TensorRT cannot parse {bundle.graph_path(graph)}: {errors}")
        config = builder.create_builder_config()
        if graph in FP16_GRAPHS:
            config.set_flag(trt.BuilderFlag.FP16)
        else:
            config.clear_flag(trt.BuilderFlag.TF32)
        timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
        config.set_timing_cache(timing, ignore_mismatch=False)
        profile = builder.create_optimization_profile()
        for io in bundle.graph_io(graph)["inputs"]:
            profile.set_shape(io["name"], *profile_shapes(bundle, graph, io["name"], io["shape"]))
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise StylehostError(f"TensorRT failed to build the {graph} engine (see the log above)")
        _atomic_write(plans[graph], bytes(serialized))
        _atomic_write(timing_path, bytes(config.get_timing_cache().serialize()))
    (folder / "key.json").write_text(json.dumps({"gpu": gpu, "tensorrt": trt.__version__, "bundle": str(bundle.path),
                                                 "bundle_digest": bundle.digest}, indent=1))
    return plans


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + f".tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def parity_inputs(bundle: Bundle, seed: int = 0) -> dict[str, tuple[np.ndarray, ...]]:
    """Seeded batch-1 inputs for every graph, in the ranges the processor feeds (numpy only)."""
    rng = np.random.default_rng(seed)
    spec = bundle.spectrogram
    m, t, e = spec.n_mels, bundle.window, bundle.emit
    n = e + sum(bundle.resynth_context)  # frames the resynth graph reads (a learned stage adds context)
    table = bundle.style_table
    w = rng.random(len(table)).astype(np.float32)
    sigma = np.array([2.4], np.float32)
    source = rng.standard_normal((1, heard_channels(bundle.denoiser_input), m, t)).astype(np.float32)
    return {
        "denoiser": (source[:, :1] + sigma[0] * rng.standard_normal((1, 1, m, t)).astype(np.float32), sigma, source,
                     ((w / w.sum()) @ table)[None].astype(np.float32)),
        "frontend": ((0.1 * rng.standard_normal((1, spec.num_samples(t)))).astype(np.float32),),
        "resynth": ((0.1 * rng.standard_normal((1, n, spec.n_fft))).astype(np.float32),
                    (rng.standard_normal((1, m, n)) - 4.0).astype(np.float32)),
    }
