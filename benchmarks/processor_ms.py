"""Per-call ms of ModelProcessor.process for one or more bundles, at each bundle's recommended settings.

    python -m benchmarks.processor_ms models/default [OTHER_BUNDLE ...]

ONNX Runtime CPU, 1 thread; 4 s of a test tone, window by window as the engine calls it (the first 20
calls left out). Used to check that a bundle's resynth graph (e.g. the learned stage of
docs/guidediff.md) keeps the whole call within the stride.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from export.bundle import load_bundle
from realtime.backends.choose import open_backend
from realtime.model_processor import ModelProcessor


def processor_ms(path: str, seconds: float = 4.0) -> dict[str, float]:
    bundle = load_bundle(path)
    proc = ModelProcessor(bundle, open_backend(bundle, "cpu"), emit=int(bundle.defaults["emit"]))
    proc.set_params(style_mix={bundle.styles[0]: 1.0}, strength=bundle.defaults["strength"],
                    steps=bundle.defaults["steps"])
    t = np.arange(int(proc.sample_rate * seconds)) / proc.sample_rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(0).standard_normal(len(t)))
    x = x.astype(np.float32)
    window, out = np.zeros(proc.window, np.float32), np.zeros(proc.stride, np.float32)
    times = []
    for i in range(0, len(x) - proc.stride, proc.stride):
        window[: -proc.stride] = window[proc.stride :]
        window[-proc.stride :] = x[i : i + proc.stride]
        t0 = time.perf_counter()
        proc.process(window, out)
        times.append(1000.0 * (time.perf_counter() - t0))
    kept = np.array(times[20:])
    return {"p50_ms": float(np.median(kept)), "p99_ms": float(np.percentile(kept, 99)),
            "stride_ms": 1000.0 * proc.stride / proc.sample_rate,
            "latency_ms": 1000.0 * proc.delay_samples / proc.sample_rate, "calls": len(kept)}


def main(paths: list[str]) -> int:
    for path in paths:
        r = processor_ms(path)
        stage = load_bundle(path).manifest.get("resynth_stage")
        what = f"learned stage, {stage['steps']} step(s)" if stage else "source-phase resynthesis"
        print(f"{path} ({what}): p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms per call of "
              f"{r['stride_ms']:.1f} ms; latency {r['latency_ms']:.1f} ms; {r['calls']} calls")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
