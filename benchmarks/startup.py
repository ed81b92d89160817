"""Start-up time of `stylehost render` and of `stylehost live` to its first audio, against an older checkout.

Why: issue 16 asks for the start-up of both commands before and after torch left the live path (commit
9c283a5: SpectrogramConfig and the mel filterbank moved to numpy-only diffusion/spectrogram.py). Each figure is
the wall time of a fresh interpreter, as a user starts it:

- render: ``render demo/plucked_melody.flac OUT --style violin`` with that tree's models/default, to exit;
- live: ``live --style violin --input system --output system`` on a private JACK dummy server, to the line
  "Ctrl-C to stop", which the command prints once its stream has started (audio flows from then on).

The older tree is a temporary ``git worktree`` of ``--before`` run from its own folder (PYTHONPATH points at
it, so its own modules and its own models/default are used, with this environment's packages). Runs of the
two trees alternate, so a slow moment of the machine falls on both.

    python -m benchmarks.startup --before 9c283a5~1 --runs 5 --json benchmarks/results/startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.jackserver import JackServer
from benchmarks.latency import write_json
from benchmarks.machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
LIVE_READY = "Ctrl-C to stop"


def _entry(tree: Path) -> list[str]:
    """How to call that tree's CLI: ``python -m stylehost`` where it exists, else the old realtime/cli.py."""
    if (tree / "stylehost" / "__main__.py").exists():
        return [sys.executable, "-m", "stylehost"]
    return [sys.executable, "-c", "import sys; from realtime.cli import main; sys.exit(main())"]


def _env(tree: Path, server: str | None = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    if server is not None:
        env["JACK_DEFAULT_SERVER"] = server
    return env


def time_render(tree: Path, out: Path) -> float:
    cmd = [*_entry(tree), "render", "demo/plucked_melody.flac", str(out), "--style", "violin"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=tree, env=_env(tree), capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"render in {tree} failed: {done.stderr[-1000:]}")
    return seconds


def time_live(tree: Path, server: str) -> float:
    cmd = [*_entry(tree), "live", "--style", "violin", "--input", "system", "--output", "system", "--seconds", "30"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tree, env=_env(tree, server), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if LIVE_READY in line:
                return time.perf_counter() - t0
        raise RuntimeError(f"live in {tree} never started: {proc.stderr.read()[-1000:] if proc.stderr else ''}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _stats(values: list[float]) -> dict[str, Any]:
    return {"median_s": round(statistics.median(values), 3), "min_s": round(min(values), 3),
            "max_s": round(max(values), 3), "runs_s": [round(v, 3) for v in values]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", default="9c283a5~1", help="the older commit (default: before torch left the live path)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "startup.json")
    args = p.parse_args(argv)
    rev = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    now = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="stylehost-startup-"))
    before = work / "before"
    subprocess.run(["git", "worktree", "add", "--detach", str(before), rev], cwd=ROOT, check=True,
                   capture_output=True)
    trees = {"before": before, "now": ROOT}
    times: dict[str, dict[str, list[float]]] = {k: {"render": [], "live": []} for k in trees}
    try:
        with JackServer(rate=48000, period=256) as server:
            for run in range(args.runs):
                for name, tree in trees.items():
                    times[name]["render"].append(time_render(tree, work / f"{name}-{run}.wav"))
                    times[name]["live"].append(time_live(tree, server.name))
                    print(f"run {run + 1}: {name}: render {times[name]['render'][-1]:.2f} s, "
                          f"live {times[name]['live'][-1]:.2f} s", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "command": "python -m benchmarks.startup " + " ".join(argv if argv is not None else sys.argv[1:]),
        "before": rev, "now": now + ("+dirty" if _dirty() else ""),
        "render": {k: _stats(v["render"]) for k, v in times.items()},
        "live_to_first_audio": {k: _stats(v["live"]) for k, v in times.items()},
        "machine": machine_info(),
    }
    write_json(args.json, result)
    print(json.dumps({k: result[k] for k in ("render", "live_to_first_audio")}, indent=1))
    return 0


def _dirty() -> bool:
    return bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    raise SystemExit(main())
