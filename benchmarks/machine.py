"""Where a figure was measured: CPU model, cores, GPU, date and commit, recorded beside every result.

A latency figure without its machine is not comparable with anything, so every benchmark JSON carries
this block and RESULTS.md prints it. Read from /proc/cpuinfo and nvidia-smi; nothing is installed.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from diffusion.provenance import command_line, git_commit


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """'model name' of the first CPU (Linux); platform.processor() elsewhere; '' when unknown."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def gpu_names() -> list[str]:
    """NVIDIA GPU names from nvidia-smi when it exists and answers; [] otherwise (no GPU is not an error)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def load_average() -> list[float]:
    """1/5/15-minute load: a benchmark taken at load > cores is not publishable, so it is recorded."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_info() -> dict[str, Any]:
    """The provenance block stored in every benchmark JSON."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "gpus": gpu_names(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": load_average(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git_commit": git_commit(),
        "command": command_line(),
    }
