"""Training records how a model was made, and that record adds up across resumed sessions."""

from pathlib import Path

from diffusion.checkpoint import load_checkpoint
from diffusion.provenance import git_commit
from diffusion.train import train
from tests.diffusion.synthdata import make_dataset
from tests.diffusion.test_train import tiny


def test_provenance_accumulates_across_resumes(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "synth", clips=5, seconds=0.6)
    run = tmp_path / "run"
    train(tiny("steps=3", "seed=11"), data, run, progress=False)
    first = load_checkpoint(run / "model.pt")["meta"]["provenance"]
    assert first["seed"] == 11 and first["steps"] == 3 and len(first["sessions"]) == 1
    assert first["sessions"][0]["start_step"] == 0 and first["sessions"][0]["end_step"] == 3
    assert first["wall_seconds"] >= 0 and first["sessions"][0]["git_commit"] == git_commit()
    train(tiny("steps=5", "seed=11"), data, run, progress=False)
    second = load_checkpoint(run / "checkpoint.pt")["provenance"]
    assert [s["start_step"] for s in second["sessions"]] == [0, 3]
    assert second["steps"] == 5 and second["wall_seconds"] >= first["wall_seconds"]
    assert second["sessions"][1]["command"].split()[0]  # whatever ran it, a command is recorded
