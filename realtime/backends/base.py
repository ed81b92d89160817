"""The one interface every inference backend implements: load a bundle, run a batch through a graph.

Graphs and their shapes are the bundle's (export/bundle.py): ``denoiser`` (B,1,mels,T) x, (B,) sigma,
(B,C,mels,T) source (C=2: the input and its excitation), (B,emb) style_vec -> (B,1,mels,T) x0;
``frontend`` (B, samples) -> (B, mels, T);
``resynth`` (B,S,n_fft) frames, (B,mels,S) log-mel -> (B,S,n_fft). Inputs are float32 numpy arrays in
the manifest's input order; the output may be a buffer the backend reuses, valid until its next call
(the processor consumes it at once, so a call need not allocate).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np

from diffusion.errors import StylehostError
from export.bundle import Bundle

# Backend names "auto" tries, in this order (fastest first, as far as measured: torch-cuda replays one
# captured CUDA graph per call, where ONNX Runtime's CUDA provider launches each node from the host; none of
# the GPU ones has been timed against another on one GPU yet, see benchmarks/RESULTS.md).
AUTO_ORDER = ("tensorrt", "ort-tensorrt", "torch-cuda", "cuda", "cpu")


class Backend(ABC):
    """A loaded bundle ready to run. ``name`` is the CLI name, ``description`` what actually runs it."""

    name: str = "?"
    description: str = "?"
    # Set by a per-call trace (realtime/calltrace.py) while it records: each bound call reports its graph's wall
    # seconds to it. None (one attribute test per call) otherwise.
    timer: Callable[[str, float], None] | None = None

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle

    @abstractmethod
    def run(self, graph: str, *inputs: np.ndarray) -> np.ndarray:
        """One call of ``graph`` on a batch; see the module docstring for shapes."""

    def run_all(self, graph: str, *inputs: np.ndarray) -> list[np.ndarray]:
        """Every output of one call, in the graph's order: a streaming bundle's denoiser returns x0 and then its
        new state (export/streaming.py). Backends that cannot are refused at open (choose.open_backend)."""
        raise StylehostError(f"backend {self.name} cannot run streaming bundles; use --backend cpu")

    def bind(self, graph: str, inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> Callable[[], None]:
        """A call of ``graph`` made once on fixed arrays: each call of the result reads ``inputs`` where they lie
        (change them in place between calls) and writes every output into ``outputs`` in place. Why: the
        worker's per-call path then allocates nothing the backend can avoid (issue 16), and a streaming
        denoiser's state goes from one buffer to the other without a copy. This default runs ``run_all``
        (``run`` for one output) and copies; the ONNX Runtime CPU backend binds the arrays themselves."""
        ins, outs = tuple(inputs), tuple(outputs)

        def call() -> None:
            timer, t0 = self.timer, time.perf_counter()
            got = [self.run(graph, *ins)] if len(outs) == 1 else self.run_all(graph, *ins)
            for dst, src in zip(outs, got, strict=True):
                np.copyto(dst, src)
            if timer is not None:
                timer(graph, time.perf_counter() - t0)
        return call
