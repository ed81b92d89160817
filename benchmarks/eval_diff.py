"""Paired difference of two `stylehost eval` results, pair by pair, with its standard error.

    python -m benchmarks.eval_diff runs/eval-a/eval.json runs/eval-b/eval.json --out benchmarks/results/X
    python -m benchmarks.eval_diff A.json B.json --system-a default --system-b default

Two eval runs on the same split, seed and clips per pair score the same clips, so a model's per-pair means
can be compared pair by pair: the mean of (B - A) over the ordered style pairs, and its standard error
(sample s.d. / sqrt(pairs)). Whether 6.57 against 6.54 dB is a loss or noise is then a number, not a guess.
Refuses two runs that did not score the same clips. ``--out PREFIX`` writes PREFIX.json and PREFIX.md.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

from diffusion.files import write_json_and_markdown

MEASURES = ("log_mel_db", "harmonic_db", "chroma", "style_acc")
SAME_CLIPS = ("split", "seed", "clips_per_pair", "pairs")


def load_eval(path: Path) -> dict[str, Any]:
    """An eval.json, or a clear error (a folder is read as its eval.json)."""
    if path.is_dir():
        path = path / "eval.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"eval_diff: cannot read {path}: {exc}") from exc
    if "per_pair" not in data:
        raise SystemExit(f"eval_diff: {path} has no per_pair table (not a `stylehost eval` result)")
    return data


def check_same_clips(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Refuse runs that scored different clips: their per-pair means are not paired."""
    for key in SAME_CLIPS:
        if a.get(key) != b.get(key):
            raise SystemExit(f"eval_diff: the two runs differ in {key} ({a.get(key)} vs {b.get(key)}): "
                             "not the same clips, so not paired")


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample s.d. / sqrt(n)) of paired differences; the s.e. is NaN below 2 values,
    so no verdict can rest on a single pair or round."""
    n = len(values)
    mean = sum(values) / n if n else math.nan
    if n < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) / math.sqrt(n)


def paired(a: dict[str, Any], b: dict[str, Any], system_a: str, system_b: str) -> dict[str, Any]:
    """Per measure: A's and B's mean over the shared pairs, mean(B - A), its s.e. and the pair count."""
    pairs = sorted(set(a["per_pair"]) & set(b["per_pair"]))
    if len(pairs) < 2:
        raise SystemExit("eval_diff: fewer than 2 style pairs in common")
    out: dict[str, Any] = {}
    for measure in MEASURES:
        rows = []
        for pair in pairs:
            ra, rb = a["per_pair"][pair].get(system_a), b["per_pair"][pair].get(system_b)
            if ra is None or rb is None:
                raise SystemExit(f"eval_diff: pair {pair} lacks system {system_a!r} or {system_b!r}")
            va, vb = ra.get(measure), rb.get(measure)
            if va is None or vb is None or not (math.isfinite(va) and math.isfinite(vb)):
                continue
            rows.append((va, vb))
        if len(rows) < 2:
            continue
        n = len(rows)
        mean, se = mean_se([vb - va for va, vb in rows])
        out[measure] = {"a": sum(r[0] for r in rows) / n, "b": sum(r[1] for r in rows) / n,
                        "diff": mean, "se": se, "pairs": n}
    return out


def table_md(result: dict[str, Any], label_a: str, label_b: str) -> str:
    lines = [f"| measure | {label_a} | {label_b} | {label_b} - {label_a}, paired mean ± s.e. | pairs |",
             "|---|---|---|---|---|"]
    for measure, row in result.items():
        lines.append(f"| {measure} | {row['a']:.3f} | {row['b']:.3f} | {row['diff']:+.3f} ± {row['se']:.3f} "
                     f"| {row['pairs']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.eval_diff", description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path, help="the first eval.json (or its folder)")
    p.add_argument("b", type=Path, help="the second eval.json (or its folder)")
    p.add_argument("--system-a", default="default", help="system name inside A's per_pair (default: default)")
    p.add_argument("--system-b", default="default", help="system name inside B's per_pair (default: default)")
    p.add_argument("--label-a", default=None, help="column label for A (default: its path)")
    p.add_argument("--label-b", default=None, help="column label for B (default: its path)")
    p.add_argument("--out", type=Path, default=None, help="write PREFIX.json and PREFIX.md")
    args = p.parse_args(argv)
    a, b = load_eval(args.a), load_eval(args.b)
    check_same_clips(a, b)
    result = paired(a, b, args.system_a, args.system_b)
    label_a, label_b = args.label_a or str(args.a), args.label_b or str(args.b)
    command = "python -m benchmarks.eval_diff " + shlex.join(argv if argv is not None else sys.argv[1:])
    md = f"# Paired eval difference\n\n`{command}`\n\n" + table_md(result, label_a, label_b)
    print(md)
    if args.out is not None:
        payload = {"a": str(args.a), "b": str(args.b), "system_a": args.system_a, "system_b": args.system_b,
                   "command": command, "measures": result,
                   "commits": {"a": a.get("git_commit"), "b": b.get("git_commit")}}
        write_json_and_markdown(args.out, payload, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
