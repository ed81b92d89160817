"""scripts/benchmarks.sh stays valid: bash parses it and every `stylehost` subcommand it calls exists.

(Running it takes minutes by design; `bash scripts/benchmarks.sh --quick` is the manual end-to-end check.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from stylehost.cli import build_parser

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmarks.sh"


def test_script_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_script_calls_existing_commands() -> None:
    calls = re.findall(r"\$stylehost (bench \w+)", SCRIPT.read_text())
    assert {"bench latency", "bench quality", "bench report", "bench gpu"} <= set(calls)
    parser = build_parser()
    for call in set(calls):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([*call.split(), "--help"])
        assert exc.value.code == 0
