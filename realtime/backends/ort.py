"""ONNX Runtime: the CPU provider (default everywhere) and, with onnxruntime-gpu, the CUDA and
TensorRT execution providers. Threads are set explicitly: ORT's default (one per core) fights the
audio and worker threads on a small machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from diffusion.errors import StylehostError
from export.bundle import CONDITION_GRAPH, GRAPHS, INT8_GRAPH, Bundle
from export.gpu import gpu_present
from realtime.backends.base import Backend

GPU_INSTALL = "pip uninstall -y onnxruntime && pip install 'stylehost[gpu]'"
PRECISIONS = ("auto", "fp32", "int8")  # auto: the bundle's int8 denoiser on the CPU provider when it has one
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "ort-tensorrt": "TensorrtExecutionProvider"}


def _import_ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise StylehostError(f"onnxruntime is not installed ({exc}); pip install onnxruntime") from exc
    return onnxruntime


class OrtBackend(Backend):
    """One InferenceSession per graph on the chosen provider (``kind``: cpu, cuda or ort-tensorrt).

    ``precision``: ``int8`` runs the bundle's int8 denoiser (export/quantize.py: about twice as fast on a
    CPU with VNNI, figures in the manifest's ``quantization``) in place of the fp32 one; ``auto`` does so on
    the CPU provider when the bundle has one; GPU providers run fp32 (their own fp16 is TensorRT's)."""

    def __init__(self, bundle: Bundle, kind: str = "cpu", threads: int = 1, precision: str = "auto") -> None:
        super().__init__(bundle)
        if precision == "fp16":
            raise StylehostError(f"backend {kind}: --precision fp16 runs on --backend torch-cuda only (TensorRT "
                                 "chooses its own); use --precision auto")
        if precision not in PRECISIONS:
            raise StylehostError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
        has_int8 = bundle.has_graph(INT8_GRAPH)
        if precision == "int8" and kind != "cpu":
            raise StylehostError(f"backend {kind}: --precision int8 runs on the CPU backend only; use --backend cpu "
                                 "or --precision fp32")
        if precision == "int8" and not has_int8:  # audit: int8-needs-graph
            raise StylehostError(f"model {bundle.name} has no int8 denoiser; make one with `stylehost export "
                                 f"quantize --model {bundle.path}`, or use --precision fp32")
        self.precision = "int8" if kind == "cpu" and has_int8 and precision != "fp32" else "fp32"
        files = {g: g for g in GRAPHS}
        if bundle.has_graph(CONDITION_GRAPH):  # a streaming bundle's FiLM, run when the style or schedule changes
            files[CONDITION_GRAPH] = CONDITION_GRAPH
        if self.precision == "int8":
            files["denoiser"] = INT8_GRAPH
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
        for graph in files:
            try:
                sess = ort.InferenceSession(str(bundle.graph_path(files[graph])), opts, providers=providers)
            # audit: ort-load-wrapped
            except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
                raise StylehostError(f"onnxruntime cannot load {bundle.graph_path(files[graph])}: {exc}") from exc
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
        threads_note += ", int8 denoiser" if self.precision == "int8" else ""
        self.description = f"onnxruntime {ort.__version__} {provider}{threads_note}"

    def run(self, graph: str, *inputs: np.ndarray) -> np.ndarray:
        return self.run_all(graph, *inputs)[0]

    def bind(self, graph: str, inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> Callable[[], None]:
        """On the CPU provider, an IOBinding of the arrays themselves: ONNX Runtime reads the inputs' memory and
        writes the outputs' (no per-call feed dict, output allocation or copy: for a streaming denoiser's 20
        state tensors that is most of what a one-frame call does outside the graph). GPU providers take the
        copying default."""
        if self.name != "cpu":
            return super().bind(graph, inputs, outputs)
        ort = _import_ort()
        sess = self._sessions[graph]
        specs = sess.get_outputs()
        if len(inputs) != len(self._inputs[graph]) or len(outputs) != len(specs):
            raise StylehostError(f"{graph} takes {len(self._inputs[graph])} inputs and gives {len(specs)} outputs; "
                                 f"bound {len(inputs)} and {len(outputs)}")
        arrays = (*inputs, *outputs)
        for arr in arrays:  # ONNX Runtime reads and writes this memory as it lies: it must be float32, C order
            if arr.dtype != np.float32 or not arr.flags.c_contiguous:
                raise StylehostError(f"{graph}: a bound array must be C-contiguous float32, got {arr.dtype}")
        for spec, arr in zip(specs, outputs, strict=True):
            if all(isinstance(d, int) for d in spec.shape) and list(arr.shape) != list(spec.shape):
                raise StylehostError(f"{graph} output {spec.name} is {spec.shape}, bound to {list(arr.shape)}")
        binding = sess.io_binding()
        for name, arr in zip(self._inputs[graph], inputs, strict=True):
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr))  # wraps, does not copy
        for spec, arr in zip(specs, outputs, strict=True):
            binding.bind_output(spec.name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)

        def call() -> None:
            _ = arrays  # the bound memory lives as long as the call
            timer, t0 = self.timer, time.perf_counter()
            try:
                sess.run_with_iobinding(binding)
            except Exception as exc:  # wrap the foreign boundary once
                raise StylehostError(f"onnxruntime failed running {graph}: {exc}") from exc
            if timer is not None:
                timer(graph, time.perf_counter() - t0)
        return call

    def run_all(self, graph: str, *inputs: np.ndarray) -> list[np.ndarray]:
        feeds = dict(zip(self._inputs[graph], inputs, strict=True))
        try:
            return self._sessions[graph].run(None, feeds)
        except Exception as exc:  # wrap the foreign boundary once
            raise StylehostError(f"onnxruntime failed running {graph}: {exc}") from exc
