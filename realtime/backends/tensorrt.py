"""Native TensorRT: the bundle's engines (export/tensorrt.py builds and caches them) on one CUDA stream.

A call does no allocation: device buffers for every I/O tensor are allocated once at the profile's
maximum shape, tensor addresses are bound once, and host outputs are preallocated numpy arrays at
the maximum shape (a call returns a view of the used part). Host inputs are copied from the caller's
arrays (pageable memory: fine at these sizes, a few KB). NOT RUN on the development machine: see
docs/export.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from diffusion.errors import StylehostError
from export.bundle import GRAPHS, Bundle
from export.tensorrt import build_engines, cuda_check, gpu_name, import_tensorrt, profile_shapes
from realtime.backends.base import Backend


class _Graph:
    """One engine, its execution context and its preallocated buffers."""

    def __init__(self, trt: Any, cudart: Any, runtime: Any, plan: bytes, bundle: Bundle, graph: str) -> None:
        self.engine = runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise StylehostError(f"TensorRT cannot load the cached {graph} engine; rebuild with "
                                 "`stylehost export tensorrt --rebuild`")
        self.context = self.engine.create_execution_context()
        io = bundle.graph_io(graph)
        self.inputs = [i["name"] for i in io["inputs"]]
        self.output = io["outputs"][0]["name"]
        max_in = {i["name"]: profile_shapes(bundle, graph, i["name"], i["shape"])[2] for i in io["inputs"]}
        # The output's max shape: set every input to its max and ask the context.
        for name, shape in max_in.items():
            self.context.set_input_shape(name, shape)
        max_out = tuple(self.context.get_tensor_shape(self.output))
        self.shapes: dict[str, tuple[int, ...] | None] = {name: None for name in self.inputs}
        self.device: dict[str, int] = {}
        for name, shape in [*max_in.items(), (self.output, max_out)]:
            nbytes = int(np.prod(shape)) * 4
            self.device[name] = cuda_check(cudart.cudaMalloc(nbytes), "cudaMalloc")
            self.context.set_tensor_address(name, int(self.device[name]))
        self.host_out = np.empty(int(np.prod(max_out)), np.float32)


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, bundle: Bundle, log=print) -> None:
        super().__init__(bundle)
        trt, cudart = import_tensorrt()
        self._cudart = cudart
        plans = build_engines(bundle, log=log)
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._graphs = {g: _Graph(trt, cudart, self._runtime, plans[g].read_bytes(), bundle, g) for g in GRAPHS}
        self._stream = cuda_check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.description = f"TensorRT {trt.__version__} on {gpu_name(cudart)} (denoiser fp16)"

    def run(self, graph: str, *inputs: np.ndarray) -> np.ndarray:
        g, cudart, stream = self._graphs[graph], self._cudart, self._stream
        for name, x in zip(g.inputs, inputs, strict=True):
            x = np.ascontiguousarray(x, dtype=np.float32)
            if g.shapes[name] != x.shape:  # only when the shape changes: set_input_shape costs a little
                g.context.set_input_shape(name, x.shape)
                g.shapes[name] = x.shape
            cuda_check(cudart.cudaMemcpyAsync(g.device[name], x.ctypes.data, x.nbytes, self._h2d, stream), "H2D")
        if not g.context.execute_async_v3(int(stream)):
            raise StylehostError(f"TensorRT failed running {graph}")
        shape = tuple(g.context.get_tensor_shape(g.output))
        out = g.host_out[: int(np.prod(shape))]
        cuda_check(cudart.cudaMemcpyAsync(out.ctypes.data, g.device[g.output], out.nbytes, self._d2h, stream), "D2H")
        cuda_check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        return out.reshape(shape)
