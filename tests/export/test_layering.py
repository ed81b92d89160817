"""Data flows one way (STYLE.md, "The shape of the house"): ``diffusion`` and ``export`` know nothing of
``realtime``, ``gui`` or ``benchmarks``; ``realtime`` reads bundles and never imports the panel, the
benchmarks or the training code; ``gui`` drives the engine but never imports the benchmarks; and none
imports ``stylehost``, the command on top that wires them all together. Checked on the source with
``ast``, so an import inside a function (the lazy kind a test run might never reach) counts as much as
one at the top.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The CLI's other tenants: the panel, the benchmarks and the training side of diffusion (its command
# handlers and the helpers only they use). A runtime module that imports one drags torch, datasets or Qt
# into the live path, or ties the library to a script.
TRAINING = ("diffusion.train", "diffusion.distill", "diffusion.distill_report", "diffusion.eval",
            "diffusion.data", "diffusion.guide_train", "diffusion.guide_report", "diffusion.guide_loss",
            "diffusion.augment", "diffusion.pairs", "diffusion.classifier")
# The entry point: stylehost/cli.py wires every package together by "module:function" strings and lazy
# imports, so it sits on top of all of them, the one package with no rule. The benchmarks (and the test
# tooling in them, benchmarks/jackserver.py) are its tenants: no library package imports them either.
TOP = "stylehost"
ABOVE = (TOP, "benchmarks")
FORBIDDEN = {
    "diffusion": ("realtime", "gui", *ABOVE),
    "export": ("realtime", "gui", *ABOVE),
    "realtime": ("gui", *ABOVE, *TRAINING),
    "gui": ABOVE,  # the panel drives the engine: it may import realtime
    "benchmarks": (TOP,),
}


def imported(source: str, package: str) -> list[tuple[int, str]]:
    """(line, module) for every import in a module of ``package``: top level or nested, relative ones
    resolved, and ``importlib.import_module("name")`` / ``__import__("name")`` with a literal name."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            # `from diffusion import train` imports diffusion.train: name both, the check matches either
            found += [(node.lineno, base)] + [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def violations(package: str) -> list[str]:
    """'file:line imports module' for each forbidden import (one per statement and banned module)."""
    bad: dict[tuple[str, int, str], str] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for line, module in imported(path.read_text(), ".".join(path.relative_to(ROOT).parts[:-1])):
            for banned in FORBIDDEN[package]:
                if module == banned or module.startswith(banned + "."):
                    bad.setdefault((rel, line, banned), f"{rel}:{line} imports {module}")
    return sorted(bad.values())


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_a_layer_above_it(package: str) -> None:
    assert violations(package) == []


def test_only_the_command_may_import_everything() -> None:
    """Every package the distribution ships has a rule, except the entry point on top."""
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    shipped = {name.removesuffix("*") for name in include["include"]}
    assert shipped == {TOP, *FORBIDDEN}
    assert (ROOT / TOP / "cli.py").is_file()


def test_the_check_sees_nested_relative_and_dynamic_imports() -> None:
    """The scanner itself: each form of import it must not miss."""
    source = ("import gui.app\n"
              "def f():\n    from ...diffusion import train\n    from .. import engine\n    from . import ort\n"
              "    import importlib\n    importlib.import_module('benchmarks.latency')\n"
              "    from stylehost.cli import main\n")
    found = {module for _, module in imported(source, "realtime.backends")}
    assert {"gui.app", "diffusion.train", "realtime.engine", "realtime.backends.ort", "benchmarks.latency",
            "stylehost.cli"} <= found
