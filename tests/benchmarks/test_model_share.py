"""benchmarks/model_share.py: which recorded latency runs the model itself played."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.model_share import audit, main


def test_old_and_new_runs_get_their_model_share(tmp_path: Path) -> None:
    old = {"compute_calls": 270, "seconds": 600.0, "stride_ms": 4.0, "model": "m", "blocksize": 128,
           "dropouts": 93, "end_to_end_latency_ms": 19.96}  # before dry_strides: 270 of 150,000 strides
    new = {"runs": [{"compute_calls": 7500, "model_share": 1.0, "seconds": 60.0, "stride_ms": 8.0,
                     "end_to_end_latency_ms": 25.0},
                    {"compute_calls": 5, "model_share": 0.001, "seconds": 60.0, "stride_ms": 8.0,
                     "dry_line_latency_ms": 25.0, "error": "the load governor played the dry line ..."},
                    {"backend": "torch", "error": "not installed"}]}  # never ran: no row
    search = {"find_blocksize": [{"tried": [{"compute_calls": 7400, "seconds": 60.0, "stride_ms": 8.0}]}]}
    for name, data in (("a.json", old), ("b.json", new), ("c.json", search)):
        (tmp_path / name).write_text(json.dumps(data))
    rows = audit(sorted(tmp_path.glob("*.json")))
    assert [(r["file"], r["model_played"]) for r in rows] == [("a.json", False), ("b.json", True),
                                                              ("b.json", False), ("c.json", False)]
    assert rows[0]["model_share"] == 0.0018 and rows[2]["latency_ms"] == 25.0  # the dry line's figure, flagged
    assert main([str(p) for p in sorted(tmp_path.glob("*.json"))] + ["--out", str(tmp_path / "share")]) == 0
    table = (tmp_path / "share.md").read_text()
    assert table.count("**no**") == 3 and "| a.json | m | 128 | 600 | 270 | 0.2% | 93 | 19.96 | **no** |" in table
