"""Data flows one way (STYLE.md, "The shape of the house"): ``diffusion`` and ``export`` know nothing of
``realtime``, ``gui`` or ``benchmarks``; ``realtime`` reads bundles and never imports the panel, the
benchmarks or the training code. Checked on the source with ``ast``, so an import inside a function
(the lazy kind a test run might never reach) counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The CLI's other tenants: the panel, the benchmarks and the training side of diffusion (its command
# handlers and the helpers only they use). A runtime module that imports one drags torch, datasets or Qt
# into the live path, or ties the library to a script.
TRAINING = ("diffusion.train", "diffusion.distill", "diffusion.distill_report", "diffusion.eval",
            "diffusion.data", "diffusion.guide_train", "diffusion.guide_report", "diffusion.guide_loss",
            "diffusion.augment", "diffusion.pairs", "diffusion.classifier")
FORBIDDEN = {
    "diffusion": ("realtime", "gui", "benchmarks"),
    "export": ("realtime", "gui", "benchmarks"),
    "realtime": ("gui", "benchmarks", *TRAINING),
}
EXCLUDED = {
    # The entry point: it wires every package together by "module:function" strings and lazy imports, so
    # it sits on top of all of them (another change moves it out of realtime/).
    "realtime/cli.py",
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
        if rel in EXCLUDED:
            continue
        for line, module in imported(path.read_text(), ".".join(path.relative_to(ROOT).parts[:-1])):
            for banned in FORBIDDEN[package]:
                if module == banned or module.startswith(banned + "."):
                    bad.setdefault((rel, line, banned), f"{rel}:{line} imports {module}")
    return sorted(bad.values())


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_a_layer_above_it(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_nested_relative_and_dynamic_imports() -> None:
    """The scanner itself: each form of import it must not miss."""
    source = ("import gui.app\n"
              "def f():\n    from ...diffusion import train\n    from .. import cli\n    from . import ort\n"
              "    import importlib\n    importlib.import_module('benchmarks.latency')\n")
    found = {module for _, module in imported(source, "realtime.backends")}
    assert {"gui.app", "diffusion.train", "realtime.cli", "realtime.backends.ort", "benchmarks.latency"} <= found
