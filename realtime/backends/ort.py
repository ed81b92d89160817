"""ONNX Runtime: the CPU provider (default everywhere) and, with onnxruntime-gpu, the CUDA and
TensorRT execution providers. Threads are set explicitly: ORT's default (one per core) fights the
audio and worker threads on a small machine.
"""

from __future__ import annotations

import numpy as np

from diffusion.errors import StylehostError
from export.bundle import GRAPHS, Bundle
from export.gpu import gpu_present
from realtime.backends.base import Backend

GPU_INSTALL = "pip uninstall -y onnxruntime && pip install 'stylehost[gpu]'"
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "ort-tensorrt": "TensorrtExecutionProvider"}


def _import_ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise StylehostError(f"onnxruntime is not installed ({exc}); pip install onnxruntime") from exc
    return onnxruntime


class OrtBackend(Backend):
    """One InferenceSession per graph on the chosen provider (``kind``: cpu, cuda or ort-tensorrt)."""

    def __init__(self, bundle: Bundle, kind: str = "cpu", threads: int = 1) -> None:
        super().__init__(bundle)
        ort = _import_ort()
        provider = PROVIDERS[kind]
        available = ort.get_available_providers()
        if provider not in available:
            raise StylehostError(
                f"backend {kind}: this onnxruntime {ort.__version__} has no {provider} (it has "
                f"{', '.join(available)}); for NVIDIA GPUs: {GPU_INSTALL}"
            )
        if kind != "cpu" and (why := gpu_present()):
            raise StylehostError(f"backend {kind}: {why}; use --backend cpu")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3  # provider fallbacks are reported by us, in one line
        providers: list = [provider] if kind == "cpu" else [provider, "CPUExecutionProvider"]
        self._sessions = {}
        self._inputs: dict[str, list[str]] = {}
        for graph in GRAPHS:
            try:
                sess = ort.InferenceSession(str(bundle.graph_path(graph)), opts, providers=providers)
            # audit: ort-load-wrapped
            except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
                raise StylehostError(f"onnxruntime cannot load {bundle.graph_path(graph)}: {exc}") from exc
            if sess.get_providers()[0] != provider:
                # onnxruntime-gpu silently falls back to CPU when the CUDA/TensorRT libraries fail to load.
                raise StylehostError(
                    f"backend {kind}: onnxruntime could not start {provider} (the CUDA 12 / cuDNN 9"
                    f"{' / TensorRT' if kind == 'ort-tensorrt' else ''} libraries did not load); "
                    "install them or use --backend cpu"
                )
            self._sessions[graph] = sess
            self._inputs[graph] = [i.name for i in sess.get_inputs()]
        self.name = kind
        threads_note = f", {threads} thread(s)" if kind == "cpu" else ""
        self.description = f"onnxruntime {ort.__version__} {provider}{threads_note}"

    def run(self, graph: str, *inputs: np.ndarray) -> np.ndarray:
        feeds = dict(zip(self._inputs[graph], inputs, strict=True))
        try:
            return self._sessions[graph].run(None, feeds)[0]
        except Exception as exc:  # wrap the foreign boundary once
            raise StylehostError(f"onnxruntime failed running {graph}: {exc}") from exc
