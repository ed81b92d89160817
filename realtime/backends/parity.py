"""Backend against backend on seeded inputs, and `stylehost export tensorrt`, which ends with that check.

Here, not in export/, because it runs Backends (ONNX Runtime CPU as the reference, native TensorRT as the
candidate): ``export`` builds the engines (export/tensorrt.py) and knows nothing of ``realtime``; this
module sits above both. The inputs (``parity_inputs``) and the fp16/fp32 tolerances stay with the engine
builder, which chooses the precisions they allow for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from diffusion.errors import StylehostError
from export.bundle import Bundle, load_bundle, resolve
from export.tensorrt import FP16_GRAPHS, FP16_TOLERANCE, FP32_TOLERANCE, build_engines, import_tensorrt, parity_inputs
from realtime.backends.base import Backend
from realtime.backends.ort import OrtBackend
from realtime.backends.tensorrt import TensorRTBackend


def compare(reference: Backend, candidate: Backend, bundle: Bundle) -> dict[str, dict[str, float]]:
    """Max/mean |candidate - reference| per graph (two Backends), checked against the fp16/fp32 tolerances."""
    report, failures = {}, []
    for graph, inputs in parity_inputs(bundle).items():
        want = np.array(reference.run(graph, *inputs))
        got = np.array(candidate.run(graph, *inputs))
        diff = np.abs(got - want)
        report[graph] = {"max_abs": float(diff.max()), "mean_abs": float(diff.mean())}
        tol = FP16_TOLERANCE if graph in FP16_GRAPHS else FP32_TOLERANCE
        if not all(report[graph][k] <= tol[k] for k in tol):
            failures.append(f"{graph}: {report[graph]} exceeds {tol}")
    if failures:
        raise StylehostError(f"{candidate.description} disagrees with {reference.description}: {'; '.join(failures)}")
    return report


def cli_export_tensorrt(args: Any) -> int:
    """`stylehost export tensorrt` (arguments: export/cli.py ``add_tensorrt_arguments``)."""
    path = resolve(args.model)
    if path is None:
        raise StylehostError("no model bundle: pass --model BUNDLE (models/default does not exist yet)")
    bundle = load_bundle(path)
    import_tensorrt()  # one clear line before anything else when TensorRT or the GPU is missing
    plans = build_engines(bundle, rebuild=args.rebuild)
    report = compare(OrtBackend(bundle, "cpu"), TensorRTBackend(bundle), bundle)
    print(f"TensorRT engines for {bundle.name} in {next(iter(plans.values())).parent}")
    for graph, figures in report.items():
        print(f"  {graph}: max |TRT - ORT CPU| {figures['max_abs']:.2e}, mean {figures['mean_abs']:.2e}")
    return 0
