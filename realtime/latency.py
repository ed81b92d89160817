"""The engine's latency arithmetic: the fixed delay L, as a sum of ``delay_samples`` and measured hold-back.

Thread: whichever builds the engine (start-up, before any stream), and ``with_device_latency`` once the
stream reports its buffers. No state: the engine stores the ``Latency`` (realtime/params.py) returned.

Fixed latency: the output ring is primed with P zeros, so output sample n is input sample n - L,
L = P + content delay (processor delay and resampler content delays, at the device rate). P must
cover what the chain holds back: after the worker has consumed N input samples it has produced
production(N) <= N output samples (a stride waits to fill, soxr holds a few samples), and the
callback that follows needs B more. So P = B + max_N (N - production(N)) + margin, where the max is
measured here by running the same resamplers and stride on silence with this block size (exact for
this chunk pattern; arithmetic alone would miss soxr's internal chunking).

Worked example (48 kHz device, 24 kHz STFT passthrough with stride 192, delay 384, B = 256):
stride wait 384 device samples, resampler hold-back ~360, B 256, margin 4 ms = 192, so P ~ 1190;
content delay 2*384 + ~3.7 (soxr) = ~772; L ~ 1962 samples = ~41 ms, plus the device buffers.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np

from realtime.params import Latency
from realtime.processor import Processor
from realtime.resample import StreamResampler

if TYPE_CHECKING:
    from realtime.engine import EngineConfig


def measure_latency(cfg: EngineConfig, proc: Processor) -> Latency:
    """Measure max_N (N - production(N)) by running fresh resamplers on silence (see the module doc)."""
    B, R, r = cfg.blocksize, cfg.sample_rate, proc.sample_rate
    to_model = StreamResampler(R, r, 1, cfg.resample_quality)
    to_device = StreamResampler(r, R, 1, cfg.resample_quality)
    block = np.zeros((B, 1), np.float32)
    stride = np.zeros((proc.stride, 1), np.float32)
    pending = produced = deficit = 0
    # 5 s covers the count pattern many times over: at 44.1 kHz it wanders by a few samples
    # with period lcm(B, 147) and never drifts (checked over an hour); 2 samples of slack on top.
    blocks = max(128, int(5.0 * R / B))
    for k in range(1, blocks + 1):
        pending += len(to_model.process(block))
        while pending >= proc.stride:
            pending -= proc.stride
            produced += len(to_device.process(stride))
        deficit = max(deficit, k * B - produced)
    if not (to_model.identity and to_device.identity):
        deficit += 2
    scale = R / r
    return Latency(
        sample_rate=R,
        processor=proc.delay_samples * scale,
        resampler=to_model.content_delay * scale + to_device.content_delay,
        buffering=deficit,
        block=B,
        margin=int(math.ceil(cfg.margin_ms * R / 1000)),
        processor_parts=tuple((name, v * scale) for name, v in proc.delay_parts()),
    )


def with_device_latency(latency: Latency, input_s: float, output_s: float) -> Latency:
    """``latency`` with the stream's reported buffer latencies (seconds) added, in device samples."""
    R = latency.sample_rate
    return dataclasses.replace(latency, device_input=round(input_s * R), device_output=round(output_s * R))
