"""`stylehost guide-report` with a stage trained on the harmonic excitation (issue 15) and the harmonic metric.

A stage file whose training config says ``excitation`` is scored on the excitation of the source crop
(its learned-stage rows only: the baselines keep the source), ``--excitation off`` scores the same file on
the source, every system gets a harmonic distance on the rendered SoundFont clips (their manifest stores
the notes), and a dataset without notes gives NaN there, never a crash. ONNX timing is stubbed out: it
is not what these tests are about and costs seconds per system on the shared CPU.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import diffusion.guide_report as gr
from diffusion.checkpoint import save_model
from diffusion.data import Note
from diffusion.excitation import ExcitationConfig
from diffusion.guide import load_stage, save_stage
from diffusion.model import Denoiser, ModelConfig
from export.onnx import stage_excitation
from stylehost.cli import main
from tests.diffusion.test_guide import tiny_stage

STAGE_1 = "GuideDiff stage 1 step"
BASELINES = ("source-phase iSTFT", "RTISI-LA 2 it, LA 2")


@pytest.fixture(autouse=True)
def no_onnx_timing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(gr, "_time_onnx", lambda module, inputs, calls=300: {"ms_p50": 0.1, "ms_p99": 0.2})
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # the command sets 1 thread for the whole process


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny denoiser and a tiny (perturbed) stage saved as a stage trained with ``excitation=true``."""
    root = tmp_path_factory.mktemp("guide-report")
    torch.manual_seed(0)
    save_model(root / "model.pt", Denoiser(ModelConfig(channels=(8, 16), emb_dim=16, fourier_dim=8)).eval())
    save_stage(root / "guide.pt", tiny_stage(1), {"config": {"excitation": True}})
    return {"model": root / "model.pt", "stage": root / "guide.pt"}


def run_cli(files: dict[str, Path], data: Path, out: Path, *extra: str) -> dict[str, Any]:
    argv = ["guide-report", "--model", str(files["model"]), "--stage", str(files["stage"]), "--data", str(data),
            "--out", str(out), "--pairs", "2", "--seconds", "1.5", "--rtisi", "2", *extra]
    assert main(argv) == 0
    return json.loads((out / "report.json").read_text())


def test_excitation_stage_is_scored_on_the_excitation_with_harmonic_distance(
        files: dict[str, Path], small_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert stage_excitation(files["stage"]) == ExcitationConfig().to_dict()
    merged: dict[str, Any] = {}

    def fake_update(path: Path, sections: dict[str, Any]) -> None:
        merged.update(path=path, **sections)

    monkeypatch.setattr("export.bundle.update_manifest", fake_update)
    auto = run_cli(files, small_dataset, tmp_path / "auto", "--manifest", str(tmp_path / "bundle"))
    assert auto["excitation_mode"] == "auto" and auto["excitation"] == ExcitationConfig().to_dict()
    stages = [n for n, s in auto["systems"].items() if s["kind"] == "stage"]
    assert stages == [STAGE_1, "GuideDiff stage 2 steps"]
    assert all(auto["systems"][n]["input"] == "excitation" for n in stages)
    assert all(auto["systems"][n]["input"] == "source" for n in BASELINES)
    # Harmonic distance beside log-mel and MR-STFT for every system, both rows, finite on real notes.
    assert auto["harmonic"]["pairs_measured"] == 2 and auto["harmonic"]["note"] is None
    for row in auto["table"].values():
        for cond in ("oracle", "model"):
            assert all(math.isfinite(row[f"{cond}_{m}"]) for m in ("log_mel_db", "mrstft", "harmonic_db"))
            assert row[f"{cond}_harmonic_db"] >= 0.0
    # --manifest merges the same report (with the new figures) into the bundle's 'reconstruction' section.
    assert merged["path"] == tmp_path / "bundle"
    section = merged["reconstruction"]
    assert section["table"][STAGE_1]["oracle_harmonic_db"] == auto["table"][STAGE_1]["oracle_harmonic_db"]
    assert section["systems"][STAGE_1]["input"] == "excitation"
    assert "harmonic dB (true log-mel)" in section["table_md"] and "| excitation |" in section["table_md"]
    assert section["table_md"] == (tmp_path / "auto" / "report.md").read_text()

    # The same stage file fed the source: the baselines do not move, the stage's own output does.
    off = run_cli(files, small_dataset, tmp_path / "off", "--excitation", "off")
    assert off["excitation"] is None and off["systems"][STAGE_1]["input"] == "source"
    for cond in ("oracle", "model"):
        for name in BASELINES:
            assert off["per_pair"][cond][name] == auto["per_pair"][cond][name]
    a, b = (np.array(r["per_pair"]["oracle"][STAGE_1]) for r in (auto, off))
    assert np.abs(a - b).max() > 1e-3


def test_excitation_changes_the_stage_output_not_the_baselines(files: dict[str, Path], small_dataset: Path) -> None:
    """Direct check on one clip: the learned stage restores other frames when fed the excitation."""
    from diffusion.excitation import excite
    from diffusion.guide import restore_windows

    stage = load_stage(files["stage"])
    manifest = json.loads((small_dataset / "manifest.json").read_text())
    clip = next(c for c in manifest["clips"] if c["split"] == "test")
    source = gr._read(small_dataset, clip, "flute")[: 24000]
    wave = torch.from_numpy(np.ascontiguousarray(source))
    shaped = torch.from_numpy(excite(source, stage.spec.sample_rate, stage.spec.hop, ExcitationConfig()))
    from diffusion.features import SpectrogramTransform

    with torch.no_grad():
        logmel = SpectrogramTransform(stage.spec).log_mel(wave[None])[0]
        ctx = gr.oracle_contexts(logmel, 2, stage.before, stage.after, float(np.log(stage.spec.log_floor)))
        on_source = restore_windows(stage, wave, ctx, 2)
        on_excitation = restore_windows(stage, shaped, ctx, 2)
    assert float((on_source - on_excitation).abs().max()) > 1e-3


def test_harmonic_distance_is_nan_without_notes(files: dict[str, Path], small_dataset: Path, tmp_path: Path) -> None:
    """A dataset rendered before issue 15 (no 'notes' in its clips): NaN harmonic figures and a note."""
    data = tmp_path / "old"
    data.mkdir()
    manifest = json.loads((small_dataset / "manifest.json").read_text())
    for clip in manifest["clips"]:
        clip.pop("notes", None)
    (data / "manifest.json").write_text(json.dumps(manifest))
    (data / "audio").symlink_to(small_dataset / "audio")
    from diffusion.checkpoint import load_denoiser

    report = gr.guide_report(load_denoiser(files["model"]), load_stage(files["stage"]), data, pairs=2, seconds=1.0,
                             rtisi_iters=(2,), stage_steps=(1,), progress=False, excitation=ExcitationConfig())
    assert report["harmonic"]["pairs_measured"] == 0 and "no notes" in report["harmonic"]["note"]
    for row in report["table"].values():
        for cond in ("oracle", "model"):
            assert math.isnan(row[f"{cond}_harmonic_db"])
            assert math.isfinite(row[f"{cond}_log_mel_db"]) and math.isfinite(row[f"{cond}_mrstft"])
    assert report["chosen"] in report["table"]
    table = gr.markdown_table(report)
    assert "n/a" in table and "no notes" in table
    json.dumps(report)  # still writes (NaN as JSON's NaN, as the eval report does)


def test_crop_notes_shift_by_the_crop_start_and_drop_notes_outside() -> None:
    notes = [Note(60, 0.1, 0.5, 90), Note(62, 0.9, 1.6, 90), Note(64, 2.5, 3.0, 90), Note(65, 0.0, 0.95, 80)]
    got = gr.crop_notes(notes, 1.0, 1.0)
    assert [(n.pitch, round(n.start, 6), round(n.end, 6)) for n in got] == [(62, -0.1, 0.6)]
    assert gr.crop_notes(notes, 0.0, 1.0) == [notes[0], notes[1], notes[3]]
    assert gr.nan_mean(np.array([np.nan, 1.0, 3.0])) == 2.0 and math.isnan(gr.nan_mean(np.array([np.nan])))
