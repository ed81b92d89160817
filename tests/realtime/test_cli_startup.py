"""The command tree imports only the chosen command's module: `--help` is instant and Ctrl-C is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stylehost import cli

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "PyQt6", "onnxruntime", "sounddevice")


def _modules_after(argv: list[str]) -> set[str]:
    """Run main(argv) in a fresh interpreter and return which heavy modules it imported."""
    code = (
        "import sys\n"
        "from stylehost.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('MODULES=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("MODULES="))
    return set(filter(None, line.removeprefix("MODULES=").split(",")))


def test_top_level_help_imports_nothing_heavy() -> None:
    assert _modules_after(["--help"]) == set()


def test_a_subcommands_help_imports_only_its_own_module() -> None:
    assert "PyQt6" not in _modules_after(["render", "--help"])
    assert _modules_after(["devices", "--help"]) == set()


def test_every_leaf_still_gets_its_arguments() -> None:
    parser = cli.build_parser(["bench", "latency", "--seconds", "2"])
    args = parser.parse_args(["bench", "latency", "--seconds", "2"])
    assert args.seconds == 2.0 and args._handler == "benchmarks.latency:cli_latency"
    full = cli.build_parser()  # argv=None: the whole tree, every leaf with its arguments
    assert full.parse_args(["render", "a.wav", "b.wav", "--style", "violin"]).style == "violin"


def test_ctrl_c_while_a_command_module_imports_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    def interrupted(p: object) -> None:
        raise KeyboardInterrupt

    commands = [(path, h, interrupted if path == ("gui",) else add, handler)
                for path, h, add, handler in cli._COMMANDS]
    monkeypatch.setattr(cli, "_COMMANDS", commands)
    assert cli.main(["gui"]) == 130
    assert capsys.readouterr().err == "stylehost: interrupted\n"


def test_steps_beyond_what_the_bundle_supports_are_refused_with_the_range(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "in.wav", np.zeros((4800, 1), np.float32), 48000)
    code = cli.main(["render", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--style", "violin",
                     "--steps", "8"])
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert code == 2 and last.startswith("stylehost: error: --steps 8:") and "supports 1..4 steps" in last
    assert not (tmp_path / "out.wav").exists()
