"""Torch eager on the bundle's model.pt: for debugging and parity, never the fast path.

Runs the very modules the exporter traced (export/graphs.py), so a disagreement with ONNX Runtime
is an export problem, not two implementations drifting apart. ``load_modules`` is shared with the
CUDA backend (realtime/backends/torch_cuda.py), which runs the same modules captured as CUDA graphs.
"""

from __future__ import annotations

from typing import Any

import numpy as np  # audit: runtime-imports

from diffusion.errors import StylehostError
from export.bundle import Bundle
from realtime.backends.base import Backend


def load_modules(bundle: Bundle, backend: str) -> dict[str, Any]:
    """The bundle's graphs as torch modules (eval mode, CPU), from model.pt and, with a learned stage,
    guide.pt; a one-line StylehostError naming ``backend`` when the weights are not in the bundle."""
    if bundle.torch_weights is None:
        raise StylehostError(
            f"backend {backend}: bundle {bundle.path} has no model.pt (exported with --no-torch-weights); "
            "re-export it with the weights or use --backend cpu"
        )
    from diffusion.checkpoint import load_denoiser
    from export.graphs import build_modules

    try:
        denoiser = load_denoiser(bundle.torch_weights)  # weights_only=True: a bundle is data, never code
    except StylehostError as exc:  # torch's refusal spans many lines; the CLI prints one
        raise StylehostError(str(exc).splitlines()[0]) from exc
    stage = None
    if bundle.manifest.get("resynth_stage"):  # a learned resynth graph: its weights travel as guide.pt
        from diffusion.guide import load_stage

        if "guide.pt" not in bundle.manifest["files"]:
            raise StylehostError(f"backend {backend}: bundle {bundle.path} has a learned resynth stage but no "
                                 "guide.pt; re-export it with the weights or use --backend cpu")
        stage = load_stage(bundle.path / "guide.pt", steps=int(bundle.manifest["resynth_stage"]["steps"]))
    return build_modules(denoiser, stage)


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, bundle: Bundle, threads: int = 1) -> None:
        super().__init__(bundle)
        import torch

        self._torch = torch
        self._modules = load_modules(bundle, "torch")
        torch.set_num_threads(threads)  # process-wide: torch is only here for debugging and parity
        self.description = f"torch {torch.__version__} eager, CPU"

    def run(self, graph: str, *inputs: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.no_grad():
            return self._modules[graph](*(torch.from_numpy(np.ascontiguousarray(x)) for x in inputs)).numpy()
