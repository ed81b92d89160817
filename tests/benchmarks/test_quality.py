"""`stylehost bench quality` on the small rendered dataset with tiny models: the teacher-only path (eval) and
the student path (distill report), each feeding `stylehost bench report`'s quality section and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from diffusion.classifier import ClassifierConfig, train_classifier
from stylehost.cli import main
from tests.export.tiny import tiny_model


@pytest.fixture(scope="module")
def classifier(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clf") / "clf.pt"
    train_classifier(small_dataset, path, ClassifierConfig(steps=30, batch=16), progress=False)
    return path


def _quality(small_dataset: Path, classifier: Path, tmp_path: Path, student: Path, steps: str) -> dict:
    torch.set_num_threads(1)
    out = tmp_path / "results"
    teacher = tiny_model(tmp_path / "teacher.pt")
    assert main(["bench", "quality", "--teacher", str(teacher), "--student", str(student), "--data",
                 str(small_dataset), "--classifier", str(classifier), "--steps", steps, "--teacher-steps", "2",
                 "--clips-per-pair", "1", "--repeats", "3", "--reconstruction", str(tmp_path / "none.json"),
                 "--out", str(out)]) == 0
    assert (out / "quality.md").read_text().startswith("| ")
    return json.loads((out / "quality.json").read_text())


@pytest.mark.slow
def test_teacher_only(small_dataset: Path, classifier: Path, tmp_path: Path) -> None:
    result = _quality(small_dataset, classifier, tmp_path, tmp_path / "no-student.pt", "1,2")
    assert result["source"] == "eval" and result["student"] is None and result["eval"]["split"] == "test"
    by_name = {r["name"]: r for r in result["rows"]}
    assert set(by_name) == {"source", "static_eq", "teacher 1-step", "teacher 2-step"}
    assert by_name["teacher 2-step"]["steps"] == 2 and by_name["source"]["model"] == "baseline"
    out = tmp_path / "RESULTS.md"
    assert main(["bench", "report", "--results", str(tmp_path / "results"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| teacher 2-step |" in text and "No distilled student was scored" in text
    assert (tmp_path / "plots" / "quality_vs_steps.png").is_file()


@pytest.mark.slow
def test_with_a_student(small_dataset: Path, classifier: Path, tmp_path: Path) -> None:
    student = tiny_model(tmp_path / "student.pt", seed=1)
    result = _quality(small_dataset, classifier, tmp_path, student, "1")
    assert result["source"] == "distill_report" and result["student"] == str(student)
    names = [r["name"] for r in result["rows"]]
    assert names == ["source (unchanged)", "static EQ (oracle)", "teacher Heun 2", "teacher DDIM 1", "student 1"]
    assert all(r["median_ms"] > 0 for r in result["rows"] if r["model"] != "baseline")
