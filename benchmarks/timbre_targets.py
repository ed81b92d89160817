"""Issue 15's targets, one table, from the results files that measured them (and into a bundle's manifest).

    python -m benchmarks.timbre_targets --out benchmarks/results/timbre_targets --bundle models/default

Reads, by default, the files docs/timbre.md cites:
- ``--before`` / ``--after``: two `python -m benchmarks.timbre` reports on the same clips (the bundle the issue
  replaced, and the one that replaces it), with the system names inside each (``--before-system``,
  ``--after-system``);
- ``--eval-diff``: `python -m benchmarks.eval_diff` of their `stylehost eval` runs (SoundFont pairs, paired);
- ``--latency-ab``: `python -m benchmarks.latency_ab` of the two bundles (end to end, block 128);
- ``--processor-ms``: `python -m benchmarks.processor_ms` of the new bundle (whole call, one thread).

Each row states its bar and whether it is met. "Met" for a paired difference means the loss is under one
standard error: not measurable, as docs/timbre.md says, not "better". ``--out PREFIX`` writes PREFIX.json and
PREFIX.md; ``--bundle`` also writes the rows as the manifest's ``timbre_targets`` section.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from benchmarks.eval_diff import mean_se
from diffusion.files import write_json_and_markdown
from export.bundle import update_manifest

RESULTS = Path("benchmarks/results")
SYNTH_SOURCES = ("sine_vibrato", "pluck", "voice", "square")
SPREAD_MARGIN_DB = 1.5  # the issue: synthesized sources within 1.5 dB of the natural spread
LATENCY_ALLOWANCE_MS = 8.0  # the issue: at most +8 ms end to end over the bundle it replaces
CALL_P99_MS = 5.5  # the issue: the whole processor call's p99 on one ONNX Runtime thread


def _read(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"timbre_targets: cannot read {path}: {exc}") from exc
    return data


def _summary(report: dict[str, Any], system: str, source: str) -> dict[str, Any]:
    key = f"{system}: {source}"
    if key not in report["summary"]:
        raise SystemExit(f"timbre_targets: no row {key!r} in the timbre report")
    row: dict[str, Any] = report["summary"][key]
    return row


def _row(target: str, bar: str, before: float | None, after: float, met: bool | None, note: str = "") -> dict[str, Any]:
    return {"target": target, "bar": bar, "before": before, "after": after, "met": met, "note": note}


def targets(before: dict[str, Any], after: dict[str, Any], before_system: str, after_system: str,
            eval_diff: dict[str, Any] | None = None, latency_ab: dict[str, Any] | None = None,
            processor_ms: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows: synthesized sources, SoundFont sources, the duet, then the eval and live figures given."""
    spread = after["summary"]["natural spread"]["harmonic_db"]["mean"]
    rows = []
    for source in SYNTH_SOURCES:
        b = _summary(before, before_system, source)["harmonic_db"]
        a = _summary(after, after_system, source)["harmonic_db"]
        bar = spread + SPREAD_MARGIN_DB
        rows.append(_row(f"harmonic dB, {source}", f"<= {bar:.2f}", b["mean"], a["mean"], a["mean"] <= bar,
                         f"± {a['se']:.2f}, {a['n']} rows"))
    eq = after["summary"]["static EQ: other styles"]["harmonic_db"]["mean"]
    b = _summary(before, before_system, "other styles")["harmonic_db"]
    a = _summary(after, after_system, "other styles")["harmonic_db"]
    rows.append(_row("harmonic dB, SoundFont sources", f"<= static EQ {eq:.2f}", b["mean"], a["mean"], a["mean"] <= eq,
                     f"± {a['se']:.2f}, {a['n']} rows"))
    b = _summary(before, before_system, "piano duet")["log_mel_db"]
    a = _summary(after, after_system, "piano duet")["log_mel_db"]
    se = max(a["se"], b["se"])
    rows.append(_row("log-mel dB, piano duet", "<= before", b["mean"], a["mean"], a["mean"] - b["mean"] <= se,
                     f"± {a['se']:.2f} (before ± {b['se']:.2f})"))
    if eval_diff is not None:
        for measure, bar, sign in (("log_mel_db", "<= before", 1.0), ("harmonic_db", "", 1.0),
                                   ("style_acc", ">= before", -1.0)):
            m = eval_diff["measures"][measure]
            loss = sign * m["diff"]  # > 0: worse than before
            met = (loss <= m["se"]) if bar else None
            rows.append(_row(f"{measure}, SoundFont pairs (eval)", bar, m["a"], m["b"], met,
                             f"paired {m['diff']:+.3f} ± {m['se']:.3f}, {m['pairs']} pairs"))
    if latency_ab is not None:
        ms: dict[str, list[float]] = {}
        for run in latency_ab["runs"]:
            ms.setdefault(run["model"], []).append(run["end_to_end_latency_ms"])
        names = list(ms)
        if len(names) == 2:
            new, old = (sum(ms[n]) / len(ms[n]) for n in names)
            rows.append(_row(f"end to end ms ({names[0]} vs {names[1]})", f"<= {old + LATENCY_ALLOWANCE_MS:.1f}",
                             old, new, new <= old + LATENCY_ALLOWANCE_MS))
            rows.append(dropout_row(latency_ab["runs"], names[0], names[1]))
    if processor_ms is not None:  # its first bundle: the one the targets are for
        name, result = next(iter(processor_ms["results"].items()))
        p99 = result["bundle"]["p99_ms"]
        rows.append(_row(f"processor call p99 ms ({name})", f"<= {CALL_P99_MS}", None, p99, p99 <= CALL_P99_MS))
    return rows


def dropout_row(runs: list[dict[str, Any]], new: str, old: str) -> dict[str, Any]:
    """Dropouts per run, paired by round (latency_ab runs A, B, B, A, ...: a round's two runs back to back)."""
    by_round: dict[int, dict[str, int]] = {}
    for run in runs:
        by_round.setdefault(run["round"], {})[run["model"]] = run["dropouts"]
    both = [r for r in by_round.values() if new in r and old in r]
    n = len(both)
    mean_new = sum(r[new] for r in both) / max(n, 1)
    mean_old = sum(r[old] for r in both) / max(n, 1)
    diff, se = mean_se([r[new] - r[old] for r in both])
    return _row("dropouts per run, live (paired by round)", "<= before", mean_old, mean_new, diff <= se,
                f"paired {diff:+.1f} ± {se:.1f}, {n} rounds")


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    def num(v: float | None) -> str:
        return "" if v is None else f"{v:.3f}"

    lines = ["# Issue 15's targets", "", f"`{command}`", "",
             "| target | bar | before | after | met | |", "|---|---|---|---|---|---|"]
    for r in rows:
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        lines.append(f"| {r['target']} | {r['bar']} | {num(r['before'])} | **{num(r['after'])}** | {met} "
                     f"| {r['note']} |")
    lines += ["", "A row compared pair by pair (or round by round) is met when its loss is under one standard error:",
              "no loss can be measured, which is not the same as a gain."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.timbre_targets", description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, default=RESULTS / "timbre_harmonic.json")
    p.add_argument("--before-system", default="today's model")
    p.add_argument("--after", type=Path, default=RESULTS / "timbre_gates.json")
    p.add_argument("--after-system", default="benefit gate")
    p.add_argument("--eval-diff", type=Path, default=RESULTS / "eval_diff_gated_vs_source_phase.json")
    p.add_argument("--latency-ab", type=Path, default=RESULTS / "latency_ab_gated_vs_source_phase_60s.json")
    p.add_argument("--processor-ms", type=Path, default=RESULTS / "processor_ms_gated.json")
    p.add_argument("--out", type=Path, default=None, help="write PREFIX.json and PREFIX.md")
    p.add_argument("--bundle", type=Path, default=None, help="also write the rows into this bundle's manifest")
    args = p.parse_args(argv)
    rows = targets(_read(args.before), _read(args.after), args.before_system, args.after_system,
                   _read(args.eval_diff), _read(args.latency_ab), _read(args.processor_ms))
    command = "python -m benchmarks.timbre_targets " + shlex.join(argv if argv is not None else sys.argv[1:])
    md = markdown(rows, command)
    print(md)
    if args.out is not None:
        write_json_and_markdown(args.out, {"command": command, "rows": rows}, md)
    if args.bundle is not None:
        sources = {k: str(getattr(args, k)) for k in ("before", "after", "eval_diff", "latency_ab", "processor_ms")}
        update_manifest(args.bundle, {"timbre_targets": {"command": command, "sources": sources, "rows": rows,
                                                         "table_md": md}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
