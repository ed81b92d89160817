"""benchmarks/eval_diff.py: the paired difference of two eval results, on hand-made per-pair tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import eval_diff


def _eval(path: Path, per_pair: dict[str, float], seed: int = 0) -> Path:
    data = {"split": "test", "seed": seed, "clips_per_pair": 3, "pairs": len(per_pair),
            "per_pair": {pair: {"default": {"log_mel_db": v, "harmonic_db": v / 2, "chroma": 0.9,
                                            "style_acc": 1.0}} for pair, v in per_pair.items()}}
    path.write_text(json.dumps(data))
    return path


def test_the_difference_is_paired_pair_by_pair(tmp_path: Path) -> None:
    # Pairs differ a lot from each other but B is A + 0.1 +- 0.01: unpaired, the spread would hide it.
    a_vals = {"piano->violin": 5.0, "violin->flute": 9.0, "flute->cello": 7.0}
    b_vals = {"piano->violin": 5.09, "violin->flute": 9.11, "flute->cello": 7.10}
    a = _eval(tmp_path / "a.json", a_vals)
    b = _eval(tmp_path / "b.json", b_vals)
    out = tmp_path / "diff"
    assert eval_diff.main([str(a), str(b), "--out", str(out)]) == 0
    row = json.loads(Path(f"{out}.json").read_text())["measures"]["log_mel_db"]
    diffs = [b_vals[k] - a_vals[k] for k in a_vals]
    mean = sum(diffs) / 3
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2) / math.sqrt(3)
    assert row["diff"] == pytest.approx(mean) and row["se"] == pytest.approx(se)
    assert row["se"] < 0.01 and row["pairs"] == 3
    assert "+0.100 ± 0.006" in Path(f"{out}.md").read_text()


def test_runs_on_different_clips_are_refused(tmp_path: Path) -> None:
    a = _eval(tmp_path / "a.json", {"x->y": 1.0, "y->x": 2.0}, seed=0)
    b = _eval(tmp_path / "b.json", {"x->y": 1.0, "y->x": 2.0}, seed=1)
    with pytest.raises(SystemExit, match="seed"):
        eval_diff.main([str(a), str(b)])
