"""Where a model came from: the commands, code commit, seed, steps and wall time of its training.

Kept in every checkpoint and model file and copied into bundle manifests, so a shipped model says
exactly how to make it again. Wall time adds up across resumed sessions.
"""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def git_commit(repo: Path | None = None) -> str:
    """HEAD of the checkout the code runs from, with '+dirty' when tracked files differ; '' outside git."""
    where = repo or Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "diffusion"], cwd=where, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.returncode else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def command_line() -> str:
    """The command as a user would type it: `stylehost ...` when run through the console script."""
    argv = list(sys.argv)
    prog = Path(argv[0]).name if argv else ""
    head = ["stylehost"] if prog in ("stylehost", "cli.py", "__main__.py") else [prog]
    return shlex.join(head + argv[1:])


class Provenance:
    """One training run's record; ``session(start_step)`` opens a resumed session, ``snapshot(step)`` closes it."""

    def __init__(self, saved: dict[str, Any] | None, seed: int, start_step: int) -> None:
        self.record: dict[str, Any] = dict(saved or {"seed": seed, "wall_seconds": 0.0, "sessions": []})
        if saved is None and start_step > 0:
            self.record["note"] = f"resumed at step {start_step} from a checkpoint that kept no provenance"
        self.record["sessions"] = list(self.record.get("sessions", []))
        self._base = float(self.record.get("wall_seconds", 0.0))
        self._t0 = time.time()
        self._session = {"command": command_line(), "git_commit": git_commit(), "start_step": start_step,
                         "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._t0)),
                         "host": f"{platform.machine()} {platform.processor() or platform.system()}"}

    def snapshot(self, step: int) -> dict[str, Any]:
        """The record as of now (this session counted up to ``step``)."""
        seconds = time.time() - self._t0
        session = {**self._session, "end_step": step, "seconds": round(seconds, 3)}
        return {**self.record, "wall_seconds": round(self._base + seconds, 3), "steps": step,
                "sessions": [*self.record["sessions"], session]}
