"""The latency budget: every term of the end-to-end delay, in samples and ms, per block size (issue 17).

    python -m benchmarks.latency_budget models/default --out benchmarks/results/latency_budget
    python -m benchmarks.latency_budget passthrough --blocks 64,128 --measured RESULTS.json

Computed with the engine's own arithmetic (realtime/latency.py ``measure_latency``: the same resamplers and
stride run on silence at the block size), so no audio server is needed. The device buffers are not known
without a stream: they are taken as one block each way (``--device-periods`` 1), what JACK's dummy driver
reports with 2 periods per buffer; a ``--measured`` file from `stylehost bench latency --json` (which writes
its own ``latency_budget`` with the stream's reported buffers) is printed beside the computed table, so the
budget and the pulse-measured end to end can be compared. ``--out PREFIX`` writes PREFIX.json and PREFIX.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.machine import machine_info
from diffusion.files import write_json_and_markdown
from realtime.engine import EngineConfig
from realtime.latency import measure_latency
from realtime.processor import Processor
from realtime.session import SessionConfig, open_session


def _processor(model: str) -> Processor:
    """The processor the live engine would build for ``model`` ("passthrough": the DSP stand-in)."""
    return open_session(SessionConfig(model=model), say=lambda _line: None).factory()


def budget(model: str, blocks: list[int], sample_rate: int, device_periods: int) -> dict[str, Any]:
    """The computed budget table for each block size (device buffers: ``device_periods`` blocks each way)."""
    proc = _processor(model)
    tables = {}
    for block in blocks:
        latency = measure_latency(EngineConfig(sample_rate=sample_rate, blocksize=block), proc)
        latency = dataclasses.replace(latency, device_input=device_periods * block,
                                      device_output=device_periods * block)
        tables[str(block)] = latency.budget()
    return {"model": model, "sample_rate": sample_rate, "device_periods": device_periods,
            "stride_samples_model_rate": proc.stride, "model_rate": proc.sample_rate, "blocks": tables}


def markdown(result: dict[str, Any], measured: dict[str, Any] | None) -> str:
    blocks = list(result["blocks"])
    head = ["term"] + [f"block {b}: samples" for b in blocks] + [f"block {b}: ms" for b in blocks]
    lines = [f"# Latency budget: {result['model']} at {result['sample_rate']} Hz", "",
             f"Computed (`python -m benchmarks.latency_budget {result['model']}`); device buffers taken as "
             f"{result['device_periods']} block(s) each way.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = [row["term"] for row in result["blocks"][blocks[0]]]
    for i, name in enumerate(names):
        cells = [str(result["blocks"][b][i]["samples"]) for b in blocks]
        cells += [f"{result['blocks'][b][i]['ms']:.2f}" for b in blocks]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if measured is not None:
        lines += ["", f"Measured: `stylehost bench latency` at block {measured.get('blocksize')}, "
                      f"end to end (pulses) {measured['end_to_end_latency_ms']:.2f} ms, "
                      f"reported {measured['reported_latency_ms']:.2f} ms."]
        if "latency_budget" in measured:
            lines += ["", "| term | samples | ms |", "|---|---|---|"]
            lines += [f"| {r['term']} | {r['samples']} | {r['ms']:.2f} |" for r in measured["latency_budget"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a bundle folder, or 'passthrough' (the DSP stand-in)")
    p.add_argument("--blocks", default="64,128,256", help="comma-separated callback block sizes")
    p.add_argument("--sample-rate", type=int, default=48000, help="device rate (the model's is the bundle's)")
    p.add_argument("--device-periods", type=int, default=1, help="device buffer per direction, in blocks")
    p.add_argument("--measured", type=Path, help="a `stylehost bench latency --json` results file to show beside")
    p.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = p.parse_args(argv)
    blocks = [int(b) for b in args.blocks.split(",") if b.strip()]
    result = {**budget(args.model, blocks, args.sample_rate, args.device_periods), "machine": machine_info()}
    measured = None
    if args.measured is not None:
        data = json.loads(args.measured.read_text())
        runs = data.get("runs", [data]) if isinstance(data, dict) else data
        measured = next((r for r in runs if "end_to_end_latency_ms" in r), None)
        result["measured"] = measured and {k: v for k, v in measured.items() if k != "pulse_delays_ms"}
    text = markdown(result, measured)
    sys.stdout.write(text)
    if args.out is not None:
        write_json_and_markdown(args.out, result, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
