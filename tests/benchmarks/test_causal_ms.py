"""`python -m benchmarks.causal_ms`: both graphs export, run in ONNX Runtime, and the report holds their figures."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.causal_ms import main


def test_the_report_times_both_denoisers(tmp_path: Path) -> None:
    assert main(["--calls", "4", "--profile", "--out", str(tmp_path / "c")]) == 0
    r = json.loads((tmp_path / "c.json").read_text())
    assert r["window"]["macs"] > 4 * r["causal"]["macs"] > 0  # 2 frames against a 32-frame window
    assert all(r[k]["p50_ms"] > 0 for k in ("window", "causal")) and r["ratio_p50"] > 0
    assert "Conv" in r["op_profile_ms"] and all(ms >= 0 for ms in r["op_profile_ms"].values())
    assert "| causal | 21.1 M |" in (tmp_path / "c.md").read_text() and not list(tmp_path.glob("*profile*"))
