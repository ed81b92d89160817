"""Open a backend by name, or pick the fastest one that works here (``auto``) and say why.

Every failure is a StylehostError whose message is one line: what is missing and how to install it.
"""

from __future__ import annotations

from collections.abc import Callable

from diffusion.errors import StylehostError
from export.bundle import Bundle
from realtime.backends.base import AUTO_ORDER, Backend

# "ort" = "cpu", kept for old scripts
NAMES = ("auto", "cpu", "ort", "cuda", "ort-tensorrt", "tensorrt", "torch-cuda", "torch")


def open_backend(bundle: Bundle, name: str, threads: int = 1, precision: str = "auto") -> Backend:
    """One backend by CLI name; StylehostError (one line) when it cannot run here. ``precision`` (auto, fp32,
    int8) is the ONNX Runtime backends' (realtime/backends/ort.py); torch-cuda takes auto, fp32 or fp16
    (auto: fp16 where parity allows), the others run fp32 and refuse int8."""
    if bundle.streaming is not None and name not in ("cpu", "ort", "cuda"):
        raise StylehostError(f"model {bundle.name} is a streaming bundle (its denoiser carries state between calls); "
                             f"backend {name} does not run those yet: use --backend cpu (or cuda)")
    if name in ("cpu", "ort", "cuda", "ort-tensorrt"):
        from realtime.backends.ort import OrtBackend

        return OrtBackend(bundle, "cpu" if name == "ort" else name, threads=threads, precision=precision)
    if name == "torch-cuda":
        if precision == "int8":
            raise StylehostError("backend torch-cuda: --precision int8 runs on the CPU backend only; use --backend "
                                 "cpu, or --precision fp16 / fp32")
        from realtime.backends.torch_cuda import TorchCudaBackend

        return TorchCudaBackend(bundle, precision=precision)
    if precision not in ("auto", "fp32"):
        raise StylehostError(f"backend {name}: --precision {precision} runs on "
                             f"{'the CPU backend' if precision == 'int8' else 'torch-cuda'} only; use --backend "
                             f"{'cpu' if precision == 'int8' else 'torch-cuda'} or --precision auto")
    if name == "tensorrt":
        from realtime.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(bundle)
    if name == "torch":
        from realtime.backends.torch import TorchBackend

        return TorchBackend(bundle, threads=threads)
    raise StylehostError(f"unknown backend {name!r}; valid: {', '.join(NAMES)}")


def choose_backend(
    bundle: Bundle, name: str = "auto", threads: int = 1, say: Callable[[str], None] | None = None,
    precision: str = "auto",
) -> Backend:
    """``auto``: TensorRT, then ONNX Runtime's TensorRT provider, torch on CUDA, ONNX Runtime's CUDA
    provider, then CPU; ``say`` gets one
    line naming the pick and why each faster one was skipped."""
    if name != "auto":
        backend = open_backend(bundle, name, threads, precision)
        if say:
            say(f"backend {backend.name}: {backend.description}")
        return backend
    skipped = []
    for candidate in AUTO_ORDER:
        try:
            backend = open_backend(bundle, candidate, threads, precision)
        except StylehostError as exc:
            skipped.append(f"{candidate}: {str(exc).split('; ')[0]}")  # the what; the how is for explicit asks
            continue
        if say:
            why = f" (skipped {'; '.join(skipped)})" if skipped else " (the fastest available)"
            say(f"backend auto -> {backend.name}: {backend.description}{why}")
        return backend
    raise StylehostError("no backend can run this bundle: " + "; ".join(skipped))
