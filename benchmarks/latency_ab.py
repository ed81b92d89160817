"""Two bundles' live runs interleaved: A, B, B, A, ... through `stylehost bench latency`, so a guest that stalls
now and then stalls both alike and their dropouts compare (one run each says little on a noisy machine).

    python -m benchmarks.latency_ab models/default runs/bundle-causal --rounds 3 --seconds 20 \\
        --out benchmarks/results/latency_ab_causal

Each run is its own `stylehost bench latency --model M --blocksize B --seconds S --json FILE` process (a
private JACK server each); the first bundle goes first in even rounds, the second in odd ones. Writes
PREFIX.json (every run's figures) and PREFIX.md (per bundle: latency, dropouts and xruns per run, compute p99).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.machine import machine_info
from diffusion.files import write_json_and_markdown

KEYS = ("end_to_end_latency_ms", "dropouts", "xruns", "compute_ms_p50", "compute_ms_p99", "rtf")


def one_run(model: str, blocksize: int, seconds: float, folder: Path, tag: str) -> dict[str, Any]:
    """One `bench latency` process; its figures, or its last error line."""
    out = folder / f"{tag}.json"
    cmd = [sys.executable, "-m", "stylehost", "bench", "latency", "--model", model, "--blocksize", str(blocksize),
           "--seconds", str(seconds), "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not out.exists():
        return {"model": model, "error": (done.stderr.strip().splitlines() or [f"rc {done.returncode}"])[-1]}
    data = json.loads(out.read_text())
    return {"model": model, **{k: data.get(k) for k in KEYS}}


def table(runs: list[dict[str, Any]], models: tuple[str, str], command: str, blocksize: int, seconds: float) -> str:
    lines = [f"# Interleaved live runs, block {blocksize}, {seconds:g} s each", "", f"`{command}`", "",
             "| bundle | end to end ms | dropouts per run | xruns per run | compute p99 ms per run |",
             "|---|---|---|---|---|"]
    for model in models:
        mine = [r for r in runs if r["model"] == model and "error" not in r]
        if not mine:
            lines.append(f"| {model} | failed | | | |")
            continue
        p99 = ", ".join(f"{r['compute_ms_p99']:.1f}" for r in mine)
        lines.append(f"| {model} | {mine[0]['end_to_end_latency_ms']:.2f} | "
                     f"{', '.join(str(r['dropouts']) for r in mine)} | {', '.join(str(r['xruns']) for r in mine)} | "
                     f"{p99} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.latency_ab", description=__doc__.split("\n")[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--blocksize", type=int, default=128)
    p.add_argument("--out", type=Path, required=True, help="write PREFIX.json and PREFIX.md")
    args = p.parse_args(argv)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="stylehost-ab-") as tmp:
        for r in range(args.rounds):
            for i, model in enumerate((args.a, args.b) if r % 2 == 0 else (args.b, args.a)):
                runs.append({"round": r, **one_run(model, args.blocksize, args.seconds, Path(tmp), f"r{r}-{i}")})
                print(json.dumps(runs[-1]), flush=True)
    command = "python -m benchmarks.latency_ab " + " ".join(argv)
    markdown = table(runs, (args.a, args.b), command, args.blocksize, args.seconds)
    write_json_and_markdown(args.out, {"command": command, "machine": machine_info(), "runs": runs}, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
