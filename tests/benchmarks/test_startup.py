"""benchmarks/startup.py times real commands: render to exit, live to its stream running, for two trees."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchmarks import startup

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.jack
def test_startup_times_both_trees_and_removes_the_worktree(tmp_path: Path) -> None:
    out = tmp_path / "startup.json"
    assert startup.main(["--before", "HEAD", "--runs", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for figure in ("render", "live_to_first_audio"):
        for tree in ("before", "now"):
            stats = result[figure][tree]
            assert len(stats["runs_s"]) == 1 and 0.2 < stats["median_s"] < 300, stats
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "stylehost-startup-" not in worktrees
