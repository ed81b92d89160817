"""`stylehost bench report`: benchmarks/RESULTS.md and its PNG plots, generated from benchmarks/results/*.json.

Every number in RESULTS.md is copied from a JSON file a benchmark command wrote, and the report lists
those files with the machine, date and commit each was measured on. A missing input never becomes a
guess: its section names the command that makes it. Files are recognised by content (latency runs,
block-size searches) or by name (quality.json, soak.json, gpu_check.json, reconstruction.json).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.model_share import MIN_SHARE
from benchmarks.model_share import share as model_share
from diffusion.errors import StylehostError

RESULTS = Path("benchmarks/results")
CPU_TARGET_MS, CPU_TARGET_SECONDS, CPU_TARGET_RTF = 50.0, 600.0, 0.5
GPU_TARGET_MS = 15.0
PLOTS = ("latency_hist", "compute_vs_blocksize", "compute_vs_steps", "quality_vs_steps")
CPU_BACKENDS = ("cpu", "ort", "torch", "dsp-passthrough")
TRT_BACKENDS = ("tensorrt", "ort-tensorrt")
MAKE = {
    "latency": "`stylehost bench latency --backend cpu --seconds 600 --json benchmarks/results/latency.json` "
               "(all of them: `scripts/benchmarks.sh`)",
    "sweep": "`stylehost bench latency --backend cpu --blocksize 128,256,512 --steps 1,2,4 --seconds 30 "
             "--json benchmarks/results/latency_sweep.json`",
    "find": "`stylehost bench latency --backend cpu --find-blocksize --json benchmarks/results/find_blocksize.json`",
    "quality": "`stylehost bench quality` (needs a model, runs/teacher/model.pt or models/teacher/model.pt, and "
               "the rendered dataset data/paired)",
    "reconstruction": "the reconstruction-stage comparison of issue 8, then `stylehost bench quality` copies it in",
    "soak": "`python -m benchmarks.soak --minutes 10 --json benchmarks/results/soak.json` (issue 10)",
    "gpu": "`stylehost bench gpu --json benchmarks/results/gpu_check.json` on a machine with an NVIDIA GPU",
}


@dataclass
class Inputs:
    """What the results folder holds, by kind; ``files`` keeps every file read, for the provenance table."""

    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: list[dict[str, Any]] = field(default_factory=list)  # runs, each with "file"
    searches: list[dict[str, Any]] = field(default_factory=list)
    quality: dict[str, Any] | None = None
    reconstruction: dict[str, Any] | None = None
    reconstruction_md: str | None = None
    soak: dict[str, Any] | None = None
    gpu: dict[str, Any] | None = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of benchmark JSON files")
    p.add_argument("--out", type=Path, default=Path("benchmarks/RESULTS.md"),
                   help="Markdown file to write; plots go to a plots/ folder beside it")


def cli_report(args: argparse.Namespace) -> int:
    text = write_report(args.results, args.out)
    plots = sorted(str(p) for p in (args.out.parent / "plots").glob("*.png") if p.stem in PLOTS)
    print(f"wrote {args.out} ({len(text.splitlines())} lines)" + (f" and {', '.join(plots)}" if plots else ""))
    return 0


def load_inputs(folder: Path) -> Inputs:
    """Read every *.json in ``folder`` (sorted, so the report is deterministic)."""
    inputs = Inputs()
    if not folder.is_dir():
        return inputs
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StylehostError(f"cannot read benchmark result {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise StylehostError(f"{path}: expected a JSON object")
        inputs.files[path.name] = data
        if "find_blocksize" in data:
            inputs.searches += [{**s, "file": path.name} for s in data["find_blocksize"]]
        elif "runs" in data or "end_to_end_latency_ms" in data:
            runs = data.get("runs", [data])
            # Only `bench latency` runs: panel_live.json and the --trace files also keep a list called "runs".
            inputs.latency += [{**r, "file": path.name} for r in runs
                               if "error" not in r and {"end_to_end_latency_ms", "compute_ms_p50", "backend"} <= set(r)]
        elif path.name == "quality.json":
            inputs.quality = data
        elif path.name == "soak.json":
            inputs.soak = data
        elif path.name == "gpu_check.json":
            inputs.gpu = data
        elif path.name == "reconstruction.json":
            inputs.reconstruction = data
            md = path.with_suffix(".md")
            inputs.reconstruction_md = md.read_text() if md.is_file() else None
    return inputs


def write_report(folder: Path, out: Path) -> str:
    """Generate the Markdown (and plots) from ``folder``; returns the text written to ``out``."""
    import os

    inputs = load_inputs(folder)
    plots = out.parent / "plots"
    made = make_plots(inputs, plots)
    rel = os.path.relpath(plots, out.parent)
    text = render(inputs, folder, {k: f"{rel}/{v.name}" for k, v in made.items()})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + [
        "| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]


def render(inputs: Inputs, folder: Path, plots: dict[str, str]) -> str:
    from benchmarks.machine import machine_info

    here = machine_info()
    lines = ["# Benchmark results", "",
             "Generated by `stylehost bench report`; do not edit by hand. Every figure below is copied from "
             f"the JSON files in `{folder}` listed here, each with the machine, date and commit it was measured "
             f"on. Report generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} at commit "
             f"`{here['git_commit'] or 'unknown'}`.", ""]
    lines += _provenance(inputs) + [""]
    lines += _targets(inputs) + [""]
    lines += _latency(inputs, plots) + [""]
    lines += _searches(inputs) + [""]
    lines += _quality(inputs, plots) + [""]
    lines += _soak(inputs) + [""]
    lines += _gpu(inputs)
    return "\n".join(lines).rstrip() + "\n"


def _provenance(inputs: Inputs) -> list[str]:
    lines = ["## Inputs and machines", ""]
    if not inputs.files:
        return lines + ["No benchmark results yet. Run `scripts/benchmarks.sh` on a quiet machine "
                        "(nothing else running), then `stylehost bench report`."]
    rows = []
    for name, data in inputs.files.items():
        m = data.get("machine", {})
        load, cores = m.get("load_average", []), m.get("cores")
        quiet = None if not (load and cores) else load[0] <= cores
        rows.append([f"`{name}`", quiet, m.get("date"), f"`{m['git_commit']}`" if m.get("git_commit") else None,
                     m.get("cpu"), m.get("cores"), ", ".join(m.get("gpus", [])) or "none",
                     " / ".join(str(x) for x in m.get("load_average", [])) or None,
                     f"`{m['command']}`" if m.get("command") else None])
    head = ["file", "quiet (load <= cores)", "measured", "commit", "CPU", "cores", "GPU", "load 1/5/15 min at start",
            "command"]
    lines += _table(head, rows)
    lines += ["", "A load average above the core count at the start means something else was running: such "
                  "figures are not publishable."]
    return lines


def _targets(inputs: Inputs) -> list[str]:
    lines = ["## Targets", ""]
    cpu = [r for r in inputs.latency if r.get("backend") in CPU_BACKENDS and r.get("seconds", 0) >= CPU_TARGET_SECONDS]
    if cpu:
        for r in cpu:
            played = model_share(r)
            ok = (r["end_to_end_latency_ms"] <= CPU_TARGET_MS and r["dropouts"] == 0 and r["rtf"] < CPU_TARGET_RTF
                  and played is not None and played >= MIN_SHARE)
            note = " (DSP passthrough, not a model: not the target's subject)" if r["backend"] == "dsp-passthrough" \
                else ""
            if played is not None and played < MIN_SHARE:
                note += (f" (the model played {100 * played:.1f}% of the strides, the load governor's dry line the "
                         "rest: not the model's figure)")
            verdict = "met" if ok else "not met"
            lines.append(f"- CPU, end-to-end <= {CPU_TARGET_MS:g} ms with zero dropouts over "
                         f"{CPU_TARGET_SECONDS / 60:g} min and rtf < {CPU_TARGET_RTF:g}: **{verdict}**"
                         f" by `{r['file']}` (backend {r['backend']}, {r['steps']} steps, block {r['blocksize']}: "
                         f"{r['end_to_end_latency_ms']:.2f} ms, {r['dropouts']} dropouts over {r['seconds']:g} s, "
                         f"rtf {r['rtf']:.3f}){note}.")
    else:
        lines.append(f"- CPU (<= {CPU_TARGET_MS:g} ms, zero dropouts over {CPU_TARGET_SECONDS / 60:g} min, rtf < "
                     f"{CPU_TARGET_RTF:g}): not measured; run {MAKE['latency']}.")
    trt = [r for r in inputs.latency if r.get("backend") in TRT_BACKENDS]
    for r in trt:
        ok = r["end_to_end_latency_ms"] <= GPU_TARGET_MS and r["dropouts"] == 0
        lines.append(f"- GPU with TensorRT, <= {GPU_TARGET_MS:g} ms: **{'met' if ok else 'not met'}** by `{r['file']}` "
                     f"({r['backend']}, block {r['blocksize']}: {r['end_to_end_latency_ms']:.2f} ms, "
                     f"{r['dropouts']} dropouts over {r['seconds']:g} s).")
    if not trt:
        lines.append(f"- GPU with TensorRT (<= {GPU_TARGET_MS:g} ms): not measured; on an NVIDIA machine run "
                     "`stylehost bench latency --backend tensorrt --blocksize 64,128 --json "
                     "benchmarks/results/latency_gpu.json`.")
    return lines


def _callback(run: dict[str, Any]) -> str:
    """Where the PortAudio callback ran (``--callback-process``), and the worker's CPUs when pinned."""
    where = run.get("callback", "worker's process")
    return where + (f", worker on CPU {run['worker_cpus']}" if run.get("worker_cpus") else "")


def _share_cell(run: dict[str, Any]) -> str:
    share = model_share(run)
    if share is None:
        return ""
    cell = f"{100 * share:.1f}%"
    return cell if share >= MIN_SHARE else f"**{cell}**"


def _latency(inputs: Inputs, plots: dict[str, str]) -> list[str]:
    lines = ["## Latency and real-time factor", ""]
    if not inputs.latency:
        return lines + [f"Not measured yet: run {MAKE['latency']} and {MAKE['sweep']}."]
    rows = [[f"`{r['file']}`", r.get("model", "default at its commit"), r["backend"], r.get("steps"),
             r["blocksize"], r["seconds"],
             r["end_to_end_latency_ms"], r.get("reported_latency_ms"), r["algorithmic_latency_ms"],
             r.get("device_latency_ms"), r["compute_ms_p50"], r["compute_ms_p99"], r.get("compute_ms_max"),
             r.get("stride_ms"), r["rtf"], _share_cell(r), r["dropouts"], r.get("xruns"), r.get("cpu_percent"),
             r.get("probe", "engine's process"), _callback(r), r.get("device_name")]
            for r in inputs.latency]
    lines += _table(["file", "model", "backend", "steps", "block", "s", "end-to-end ms", "reported ms",
                     "algorithmic ms", "device ms", "compute p50 ms", "p99", "max", "stride ms", "rtf",
                     "model share", "dropouts", "xruns", "CPU % (process)", "probe", "callback", "device"], rows)
    lines += ["", "End-to-end: median delay of the pulse train (one pulse per 0.2 s) from the probe's JACK output "
                  "to its input through the live engine. Compute: wall time of each processor call (one call per "
                  "stride); rtf = mean compute / stride. Model share: the strides the model played (processor "
                  f"calls / strides, benchmarks/model_share.py); under {MIN_SHARE:.0%} (in bold) the load governor "
                  "played the dry line, at the same latency, for the rest: that row's latency and dropouts are not "
                  "the model's. CPU %: the engine's whole process, 100 = one core. Probe: "
                  "where the measuring JACK client ran. Since the probe moved to its own process (as a real source "
                  "is another program), its Python callback no longer competes with the engine for the GIL; "
                  "results measured with it inside the engine's process (and its CPU share) say so."]
    for key, caption in (("latency_hist", "Per-pulse end-to-end latency"),
                         ("compute_vs_blocksize", "Compute per window vs block size"),
                         ("compute_vs_steps", "Compute per window vs sampling steps")):
        if key in plots:
            lines += ["", f"![{caption}]({plots[key]})"]
    if len({r["blocksize"] for r in inputs.latency}) < 2 or len({r.get("steps") for r in inputs.latency}) < 2:
        lines += ["", f"For compute against block size and steps, run {MAKE['sweep']}."]
    return lines


def _searches(inputs: Inputs) -> list[str]:
    lines = ["## Smallest block size with zero dropouts", ""]
    if not inputs.searches:
        return lines + [f"Not measured yet: run {MAKE['find']}."]
    rows = [[f"`{s['file']}`", s.get("model", "default at its commit"), s["backend"], s.get("steps"), s["seconds"],
             s["smallest_blocksize"] or "none found",
             s.get("end_to_end_latency_ms"),
             ", ".join(f"{t['blocksize']}: {t['dropouts']}" for t in s.get("tried", []))] for s in inputs.searches]
    return lines + _table(["file", "model", "backend", "steps", "s per try", "smallest block", "its end-to-end ms",
                           "tried (block: dropouts)"], rows)


def _quality(inputs: Inputs, plots: dict[str, str]) -> list[str]:
    lines = ["## Quality (test split)", ""]
    q = inputs.quality
    if q is None:
        lines += [f"Not measured yet: run {MAKE['quality']}."]
    else:
        made = "`stylehost distill-report`" if q.get("source") == "distill_report" else "`stylehost eval`"
        lines += [f"From `quality.json` (tables by {made}'s code; teacher `{q.get('teacher')}`, student "
                  f"`{q.get('student') or 'none'}`, split {q.get('split', 'test')}).", "", q["markdown"].rstrip()]
        if "quality_vs_steps" in plots:
            lines += ["", f"![Quality vs steps]({plots['quality_vs_steps']})"]
        if not any(r.get("model") == "student" for r in q.get("rows", [])):
            lines += ["", "No distilled student was scored: train one (`stylehost distill`, docs/distill.md) and "
                          "rerun `stylehost bench quality`."]
    lines += ["", "### Reconstruction stages", ""]
    if inputs.reconstruction_md:
        lines.append(inputs.reconstruction_md.rstrip())
    elif inputs.reconstruction is not None:
        lines.append("`reconstruction.json` is present (no Markdown table beside it):")
        lines += ["", "```json", json.dumps(inputs.reconstruction, indent=1)[:4000], "```"]
    else:
        lines.append(f"Not measured yet: {MAKE['reconstruction']}.")
    return lines


def _soak(inputs: Inputs) -> list[str]:
    lines = ["## Soak (long session)", ""]
    if inputs.soak is None:
        return lines + [f"Not measured yet: run {MAKE['soak']}."]
    def scalars(d: dict[str, Any]) -> list[list[Any]]:
        return [[f"`{k}`", v] for k, v in d.items() if isinstance(v, (int, float, str, bool)) or v is None]

    summary = inputs.soak.get("summary")  # benchmarks/soak.py: the verdict figures live under "summary"
    rows = (scalars(summary) if isinstance(summary, dict) else []) + scalars(inputs.soak)
    return lines + ["From `soak.json` (written by `benchmarks/soak.py`):", ""] + _table(["key", "value"], rows)


def _gpu(inputs: Inputs) -> list[str]:
    lines = ["## GPU check", ""]
    g = inputs.gpu
    if g is None:
        return lines + [f"Not measured yet: run {MAKE['gpu']}."]
    env = g.get("environment", {})
    lines += [f"From `gpu_check.json`, GPU: **{g.get('gpu', 'unknown')}** (driver and memory: "
              f"{env.get('nvidia_smi', 'unknown')}; torch {env.get('torch')} for CUDA {env.get('torch_cuda')}; "
              f"onnxruntime {env.get('onnxruntime')}; TensorRT {env.get('tensorrt')}), bundle {g.get('bundle')} "
              f"({g.get('bundle_origin')}), {g.get('calls')} calls per figure.", ""]
    rows = []
    for name, e in g.get("backends", {}).items():
        if "error" in e:
            rows.append([name, None, None, None, None, e["error"]])
            continue
        d, rec = e.get("denoiser_batch1", {}), e.get("recommended") or {}
        parity = max((v["max_abs"] for v in e.get("parity_vs_ort_cpu", {}).values()), default=None)
        pick = f"{rec['steps']} steps, emit {rec['emit']}: p99 {rec['p99_ms']:.2f} of {rec['stride_ms']:.0f} ms" \
            if rec else "none fits"
        rows.append([name, d.get("p50_ms"), d.get("p99_ms"), parity, pick, e.get("description")])
    lines += _table(["backend", "denoiser p50 ms", "denoiser p99 ms", "max parity error", "recommended", "what ran"],
                    rows)
    lat = g.get("latency")
    if lat:
        lines += ["", "End to end: " + (lat.get("skipped") or lat.get("error") or
                  f"{lat.get('end_to_end_latency_ms')} ms, {lat.get('dropouts')} dropouts (`{lat.get('command')}`)")]
    return lines


def make_plots(inputs: Inputs, folder: Path) -> dict[str, Path]:
    """PNG plots (matplotlib Agg, no display); only those with data. {key: path}."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: dict[str, Path] = {}

    def save(fig: Any, key: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{key}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        made[key] = path

    longest: dict[str, dict[str, Any]] = {}  # the longest run per backend: a sweep's many short runs would clutter
    for r in inputs.latency:
        if r.get("pulse_delays_ms") and len(r["pulse_delays_ms"]) > len(longest.get(r["backend"], {}).get(
                "pulse_delays_ms", [])):
            longest[r["backend"]] = r
    with_delays = list(longest.values())
    if with_delays:
        import numpy as np

        every = np.concatenate([r["pulse_delays_ms"] for r in with_delays])
        lo, hi = float(every.min()) - 0.5, float(every.max()) + 0.5
        bins = np.arange(lo, hi + 0.1, max(0.1, (hi - lo) / 120)).tolist()  # shared bins: runs stay comparable
        fig, ax = plt.subplots(figsize=(7, 4))
        for r in with_delays:
            ax.hist(r["pulse_delays_ms"], bins=bins, alpha=0.6,
                    label=f"{r['backend']} {r.get('steps')} steps, block {r['blocksize']} ({r['seconds']:g} s)")
        ax.axvline(CPU_TARGET_MS, color="k", ls="--", lw=1, label=f"CPU target {CPU_TARGET_MS:g} ms")
        ax.set(xlabel="end-to-end latency per pulse (ms)", ylabel="pulses", title="Latency histogram")
        ax.legend(fontsize=7)
        save(fig, "latency_hist")
    for x_key, key, xlabel in (("blocksize", "compute_vs_blocksize", "block size (samples)"),
                               ("steps", "compute_vs_steps", "sampling steps")):
        groups = _groups(inputs.latency, x_key)
        if any(len(points) >= 2 for points in groups.values()):
            fig, ax = plt.subplots(figsize=(7, 4))
            for label, points in groups.items():
                xs = [p[x_key] for p in points]
                ax.plot(xs, [p["compute_ms_p50"] for p in points], "o-", label=f"{label} p50")
                ax.plot(xs, [p["compute_ms_p99"] for p in points], "s--", label=f"{label} p99")
            strides = {float(p["stride_ms"]) for pts in groups.values() for p in pts if p.get("stride_ms")}
            for s in sorted(strides):
                ax.axhline(s, color="k", ls=":", lw=1, label=f"stride {s:g} ms (budget)")
            if x_key == "blocksize":  # block sizes double: a log axis spaces them evenly
                ax.set_xscale("log", base=2)
                ax.set_xticks(sorted({p[x_key] for pts in groups.values() for p in pts}))
                ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.set(xlabel=xlabel, ylabel="compute per processor call (ms)", title=f"Compute vs {xlabel}")
            ax.legend(fontsize=7)
            save(fig, key)
    rows = [r for r in (inputs.quality or {}).get("rows", []) if r.get("steps") is not None]
    if rows:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        panels = ((axes[0], "log_mel_db", "log-mel distance (dB) ↓"), (axes[1], "frechet", "Frechet ↓"))
        for ax, metric, label in panels:
            series: dict[str, list[dict[str, Any]]] = {}
            for r in rows:
                series.setdefault(f"{r.get('model')} {r.get('sampler')}", []).append(r)
            for name, pts in series.items():
                pts.sort(key=lambda p: p["steps"])
                ax.plot([p["steps"] for p in pts], [p[metric] for p in pts], "o-", label=name)
            for r in (inputs.quality or {}).get("rows", []):
                if r.get("steps") is None:
                    ax.axhline(r[metric], ls=":", lw=1, color="grey")
                    ax.annotate(r["name"], (0.02, r[metric]), xycoords=("axes fraction", "data"), fontsize=7)
            ax.set(xlabel="sampling steps", ylabel=label, xscale="log", title=label)
            ax.legend(fontsize=7)
        save(fig, "quality_vs_steps")
    for key in PLOTS:  # a plot whose data is gone must not outlive it beside a report that no longer shows it
        stale = folder / f"{key}.png"
        if key not in made and stale.is_file():
            stale.unlink()
    return made


def _groups(runs: list[dict[str, Any]], x_key: str) -> dict[str, list[dict[str, Any]]]:
    """Runs grouped by everything but ``x_key`` (backend, and steps or block size), sorted along x."""
    other = "steps" if x_key == "blocksize" else "blocksize"
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        if r.get(x_key) is None:
            continue
        label = f"{r['backend']} {other} {r.get(other)}"
        groups.setdefault(label, []).append(r)
    return {k: sorted(v, key=lambda p: p[x_key]) for k, v in groups.items()}
