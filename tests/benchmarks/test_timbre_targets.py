"""benchmarks/timbre_targets.py: each row's bar and verdict, from hand-made results files."""

from __future__ import annotations

from typing import Any

from benchmarks.timbre_targets import SYNTH_SOURCES, dropout_row, targets


def _stat(mean: float, se: float = 0.1, n: int = 8) -> dict[str, Any]:
    return {"mean": mean, "se": se, "n": n}


def _report(system: str, synth: float, soundfont: float, duet: float) -> dict[str, Any]:
    summary = {"natural spread": {"harmonic_db": _stat(6.5)}, "static EQ: other styles": {"harmonic_db": _stat(6.3)},
               f"{system}: other styles": {"harmonic_db": _stat(soundfont)},
               f"{system}: piano duet": {"log_mel_db": _stat(duet, 0.5)}}
    for source in SYNTH_SOURCES:
        summary[f"{system}: {source}"] = {"harmonic_db": _stat(synth)}
    return {"summary": summary}


def test_rows_judge_each_bar() -> None:
    before, after = _report("old", 13.0, 5.2, 10.0), _report("new", 8.2, 6.4, 10.2)
    rows = {r["target"]: r for r in targets(before, after, "old", "new")}
    assert rows["harmonic dB, sine_vibrato"]["bar"] == "<= 8.00" and rows["harmonic dB, sine_vibrato"]["met"] is False
    assert rows["harmonic dB, SoundFont sources"]["met"] is False  # 6.4 > the static EQ's 6.3
    assert rows["log-mel dB, piano duet"]["met"] is True  # 0.2 worse, under its 0.5 s.e.
    good = {r["target"]: r for r in targets(before, _report("new", 7.9, 4.8, 11.0), "old", "new")}
    assert good["harmonic dB, pluck"]["met"] and good["harmonic dB, SoundFont sources"]["met"]
    assert good["log-mel dB, piano duet"]["met"] is False  # 1.0 worse: beyond its s.e.


def test_a_paired_loss_beyond_one_standard_error_is_not_met() -> None:
    diff = {"measures": {"log_mel_db": {"a": 6.5, "b": 6.6, "diff": 0.10, "se": 0.03, "pairs": 56},
                         "harmonic_db": {"a": 5.6, "b": 5.3, "diff": -0.3, "se": 0.1, "pairs": 56},
                         "style_acc": {"a": 0.92, "b": 0.93, "diff": 0.01, "se": 0.002, "pairs": 56}}}
    rows = {r["target"]: r for r in targets(_report("o", 7, 5, 9), _report("n", 7, 5, 9), "o", "n", eval_diff=diff)}
    assert rows["log_mel_db, SoundFont pairs (eval)"]["met"] is False
    assert rows["style_acc, SoundFont pairs (eval)"]["met"] is True
    assert rows["harmonic_db, SoundFont pairs (eval)"]["met"] is None  # no bar for it in the issue


def test_dropouts_are_paired_by_round() -> None:
    runs = [{"round": 0, "model": "new", "dropouts": 10}, {"round": 0, "model": "old", "dropouts": 12},
            {"round": 1, "model": "old", "dropouts": 3}, {"round": 1, "model": "new", "dropouts": 5},
            {"round": 2, "model": "new", "dropouts": 40}, {"round": 2, "model": "old", "dropouts": 2}]
    row = dropout_row(runs, "new", "old")
    assert row["after"] == 55 / 3 and row["before"] == 17 / 3
    assert row["note"].startswith("paired +12.7 ± 12.7")  # diffs -2, +2, +38
    steady = [{"round": r, "model": m, "dropouts": d} for r in range(4) for m, d in (("new", 5 + r), ("old", 1 + r))]
    assert dropout_row(steady, "new", "old")["met"] is False  # 4 more every round: s.e. 0
