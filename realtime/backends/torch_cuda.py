"""Torch on an NVIDIA GPU, made fast: the bundle's own modules, each call's work captured once as a CUDA graph.

Why this shape (issue 18): at batch 1 a denoiser call is a few hundred small kernels, and launching them
one by one from Python costs more than running them on a current GPU. A CUDA graph records the whole
launch sequence once and replays it with one call. A graph reads and writes fixed addresses, so each
(graph, input shapes) pair gets, on its first call, static device buffers, pinned host buffers (the
copies in and out are then plain DMA) and its captured graph; every later call copies in, replays,
copies out and synchronises: no allocation, no Python per kernel.

Precision: the denoiser runs in fp16 where parity allows. With ``precision="auto"`` the fp16 denoiser is
compared with the fp32 one on the bundle's seeded parity inputs at load and kept only within the fp16
tolerance that the TensorRT engines also meet (export/tensorrt.py); the frontend (log-mel of the
window) and the stage stay fp32, as TensorRT's do. ``description`` says what was chosen and why.

Without an NVIDIA GPU it fails with one line before torch is imported, so ``--backend auto`` on a CPU
machine never loads torch. ``device="cpu"`` runs the same static-buffer machinery without graphs or
pinned memory: the CPU dry run of the GPU check (benchmarks/gpu_check.py) and the tests use it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from diffusion.errors import StylehostError
from export.bundle import Bundle
from export.gpu import gpu_present
from export.tensorrt import FP16_TOLERANCE, parity_inputs
from realtime.backends.base import Backend
from realtime.backends.torch import load_modules

PRECISIONS = ("auto", "fp32", "fp16")
CUDA_TORCH_INSTALL = "pip install torch --index-url https://download.pytorch.org/whl/cu126 (a CUDA build of torch)"
MAX_SHAPES = 8  # captured (graph, shapes) pairs kept: the engine uses one per graph, eval a few batch sizes
WARMUP_CALLS = 3  # eager calls before a capture: cuDNN/cuBLAS pick their kernels and allocate workspaces


def _cuda_torch() -> Any:
    """torch with a working CUDA device, or a one-line StylehostError saying what is missing."""
    if why := gpu_present():  # audit: torch-cuda-gpu-first
        raise StylehostError(f"backend torch-cuda: {why}; use --backend cpu")
    try:
        import torch
    except ImportError as exc:
        raise StylehostError(f"backend torch-cuda: torch is not installed ({exc}); {CUDA_TORCH_INSTALL}") from exc
    if not torch.cuda.is_available():
        built = torch.version.cuda or "no CUDA (a CPU build)"
        raise StylehostError(f"backend torch-cuda: torch {torch.__version__} (built for {built}) cannot use the GPU "
                             f"here (driver missing or too old for it); {CUDA_TORCH_INSTALL}, or use --backend cpu")
    return torch


def _half_wrapper(torch: Any, module: Any) -> Any:
    """``module`` in fp16 behind fp32 inputs and outputs, so buffers and callers stay float32."""

    class Half(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module.half()

        def forward(self, *xs: Any) -> Any:
            return self.inner(*(x.half() for x in xs)).float()

    return Half().eval()


class _Captured:
    """One graph at one set of input shapes: its static buffers and, on CUDA, its captured graph.

    A module whose call cannot be captured (an op that syncs with the host) runs eagerly on the same
    buffers instead: slower, still correct; ``capture_error`` then says why."""

    def __init__(self, torch: Any, module: Any, shapes: tuple[tuple[int, ...], ...], device: str) -> None:
        cuda = device == "cuda"
        self._torch, self._cuda, self._module = torch, cuda, module
        self.host_in = [torch.zeros(s, dtype=torch.float32, pin_memory=cuda) for s in shapes]
        self.host_in_np = [t.numpy() for t in self.host_in]
        self.dev_in = [t.to(device) for t in self.host_in] if cuda else self.host_in
        self.graph: Any = None
        self.capture_error = ""
        with torch.no_grad():
            if cuda:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(WARMUP_CALLS):
                        out = module(*self.dev_in)
                torch.cuda.current_stream().wait_stream(side)
                try:
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph):
                        out = module(*self.dev_in)
                    self.graph = graph
                except RuntimeError as exc:  # e.g. "operation not permitted when stream is capturing"
                    self.capture_error = str(exc).splitlines()[0]
                    torch.cuda.synchronize()
                    out = module(*self.dev_in)
            else:
                out = module(*self.dev_in)
        self.dev_out = out
        self.host_out = torch.zeros(tuple(out.shape), dtype=torch.float32, pin_memory=cuda)
        self.host_out_np = self.host_out.numpy()

    def run(self, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        for dst, x in zip(self.host_in_np, inputs, strict=True):
            np.copyto(dst, x, casting="same_kind")
        torch = self._torch
        if not self._cuda:
            with torch.no_grad():
                self.host_out.copy_(self._module(*self.dev_in))
            return self.host_out_np
        for dev, host in zip(self.dev_in, self.host_in, strict=True):
            dev.copy_(host, non_blocking=True)
        if self.graph is not None:
            self.graph.replay()
            self.host_out.copy_(self.dev_out, non_blocking=True)
        else:
            with torch.no_grad():
                self.host_out.copy_(self._module(*self.dev_in), non_blocking=True)
        torch.cuda.current_stream().synchronize()
        return self.host_out_np


class TorchCudaBackend(Backend):
    """The bundle's torch modules on the GPU, one captured CUDA graph per (graph, input shapes)."""

    name = "torch-cuda"

    def __init__(self, bundle: Bundle, precision: str = "auto", device: str = "cuda") -> None:
        super().__init__(bundle)
        if precision not in PRECISIONS:
            raise StylehostError(f"backend torch-cuda: precision {precision!r} is not one of {', '.join(PRECISIONS)} "
                                 "(int8 runs on the CPU backend only)")
        if device not in ("cuda", "cpu"):
            raise StylehostError(f"backend torch-cuda: device must be cuda or cpu, got {device!r}")
        if device == "cuda":
            torch = _cuda_torch()
        else:
            import torch
        self._torch, self._device = torch, device
        fp32 = {g: m.to(device) for g, m in load_modules(bundle, "torch-cuda").items()}
        self.parity_fp16: dict[str, float] | None = None
        self.precision = "fp32"
        self._modules = dict(fp32)
        if precision != "fp32":
            self._choose_fp16(fp32["denoiser"], forced=precision == "fp16")
        self._captured: dict[tuple[str, tuple[tuple[int, ...], ...]], _Captured] = {}
        self.eager_graphs: list[str] = []  # graphs whose capture CUDA refused: they run eagerly, said in description
        where = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (no graphs: the dry run)"
        graphs = "CUDA graphs" if device == "cuda" else "static buffers"
        why = ""
        if self.parity_fp16 is not None:
            verdict = "kept" if self.precision == "fp16" else "refused"
            why = f", fp16 {verdict} (max |fp16 - fp32| {self.parity_fp16['max_abs']:.2e})"
        self.description = f"torch {torch.__version__} {graphs}, denoiser {self.precision}{why}, {where}"

    def _choose_fp16(self, denoiser: Any, forced: bool) -> None:
        """Run the denoiser in fp16 if (``forced``, or) it stays within FP16_TOLERANCE of fp32 here."""
        torch = self._torch
        inputs = [torch.from_numpy(x).to(self._device) for x in parity_inputs(self.bundle)["denoiser"]]
        half = _half_wrapper(torch, copy.deepcopy(denoiser))
        with torch.no_grad():
            want, got = denoiser(*inputs), half(*inputs)
        diff = (got - want).abs()
        self.parity_fp16 = {"max_abs": float(diff.max()), "mean_abs": float(diff.mean())}
        # audit: torch-cuda-fp16-parity
        if forced or all(self.parity_fp16[k] <= FP16_TOLERANCE[k] for k in FP16_TOLERANCE):
            self._modules["denoiser"] = half
            self.precision = "fp16"

    def run(self, graph: str, *inputs: np.ndarray) -> np.ndarray:
        key = (graph, tuple(x.shape for x in inputs))
        captured = self._captured.get(key)
        if captured is None:
            if len(self._captured) >= MAX_SHAPES:  # free the oldest capture (eval sweeping batch sizes)
                del self._captured[next(iter(self._captured))]
            try:
                captured = _Captured(self._torch, self._modules[graph], key[1], self._device)
            except RuntimeError as exc:  # CUDA out of memory, capture refused: one line, not a trace
                raise StylehostError(f"backend torch-cuda: cannot capture {graph} at shapes {key[1]}: "
                                     f"{str(exc).splitlines()[0]}") from exc
            self._captured[key] = captured
            if captured.capture_error and graph not in self.eager_graphs:
                self.eager_graphs.append(graph)
                self.description += f"; {graph} eager (capture refused: {captured.capture_error})"
        return captured.run(inputs)
