"""benchmarks.timbre: every calibration row on the tiny rendered dataset, and the CLI's two files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.timbre import (
    DUET_GROUP,
    OTHER_STYLES,
    SINGLE_GROUPS,
    ModelUnderTest,
    TimbreConfig,
    calibrate,
    clip_notes,
    main,
    markdown,
)
from diffusion.data import load_manifest
from diffusion.errors import StylehostError
from diffusion.excitation import ExcitationConfig
from diffusion.guide import GuideConfig, GuideStage
from diffusion.model import Denoiser, ModelConfig
from diffusion.stream import StreamConfig
from diffusion.synth_sources import SOURCES


def test_calibration_has_every_row_and_orders_the_obvious_ones(small_dataset: Path) -> None:
    torch.manual_seed(0)
    tiny = Denoiser(ModelConfig(channels=(8, 16), emb_dim=16, fourier_dim=8)).eval()
    stage = GuideStage(tiny.cfg.spectrogram, GuideConfig(channels=4, blocks=1)).eval()  # untrained: identity
    other = ModelUnderTest("harmonic", tiny, StreamConfig(steps=1), stage, ExcitationConfig())
    report = calibrate(small_dataset, TimbreConfig(clips=1, model_clips=1, targets=("flute",)), tiny,
                       StreamConfig(steps=1), stage, progress=False, models=(other,))
    summary = report["summary"]
    groups = [OTHER_STYLES, *SOURCES]
    systems = ("unchanged", "static EQ", "oracle log-mel, source-phase", "oracle log-mel, GuideDiff stage",
               "today's model", "harmonic", "oracle log-mel, harmonic stage")
    duets = {f"{s}: {DUET_GROUP}" for s in ("unchanged", "today's model", "harmonic")}
    assert set(summary) == set(SINGLE_GROUPS) | {f"{s}: {g}" for s in systems for g in groups} | duets
    for key in duets:  # polyphonic: log-mel distance only
        assert summary[key]["harmonic_db"]["n"] == 0 and np.isfinite(summary[key]["log_mel_db"]["mean"])
    for row in report["rows"]:
        assert (row["source"] == DUET_GROUP or np.isfinite(row["harmonic_db"])) and np.isfinite(row["log_mel_db"]), row
    assert len(report["clips"]) == 1 and report["styles"] == ["piano", "guitar", "flute"]
    assert {r["target"] for r in report["rows"]} == {"flute"}
    assert {r["source"] for r in report["rows"] if r["system"] == "unchanged"} == {"piano", "guitar", *SOURCES,
                                                                                 DUET_GROUP}

    def mean(key: str) -> float:
        return summary[key]["harmonic_db"]["mean"]

    # Faint noise barely moves the metric; a lone sine is further from every target than the other font.
    assert mean("noise check") < 0.5 < mean("natural spread") < mean("unchanged: sine_vibrato")
    assert mean("natural spread") < mean("noise comb")  # target-shaped noise is no harmonic series
    # An untrained stage is exactly source-phase resynthesis, so its oracle rows match.
    assert mean("oracle log-mel, GuideDiff stage: sine_vibrato") == pytest.approx(
        mean("oracle log-mel, source-phase: sine_vibrato"), abs=1e-3)
    # The harmonic excitation gives the lone sine partials: through the same (identity) stage with the
    # target's own log-mel it lands closer to the target's harmonic structure than the sine itself.
    assert mean("oracle log-mel, harmonic stage: sine_vibrato") < mean("oracle log-mel, GuideDiff stage: sine_vibrato")
    table = markdown(report)
    assert "| natural spread |" in table and "| today's model: voice |" in table and "| harmonic: pluck |" in table


def test_notes_are_re_derived_and_checked_against_the_manifest(small_dataset: Path) -> None:
    manifest = load_manifest(small_dataset)
    clip = next(c for c in manifest["clips"] if c["split"] == "test")
    notes = clip_notes(manifest, small_dataset, [clip])[clip["id"]]
    assert sorted({round(n.start, 4) for n in notes}) == clip["onsets"]
    assert all(n.end > n.start for n in notes) and max(n.end for n in notes) <= clip["samples"] / 24000
    assert "notes" in clip  # stored since issue 15: used as they are, checked against onsets and pitches
    tampered = copy.deepcopy(clip)
    tampered["pitches"][0] += 1
    with pytest.raises(StylehostError, match="damaged"):
        clip_notes(manifest, small_dataset, [tampered])
    older = {k: v for k, v in clip.items() if k != "notes"}  # a dataset rendered before: re-derived
    derived = clip_notes(manifest, small_dataset, [older])[clip["id"]]
    assert [(n.pitch, n.start, n.end) for n in derived] == [(n.pitch, n.start, n.end) for n in notes]
    older["pitches"][0] += 1
    with pytest.raises(StylehostError, match="re-derive"):
        clip_notes(manifest, small_dataset, [older])


def test_cli_writes_json_and_markdown(small_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "timbre.json"
    argv = ["--data", str(small_dataset), "--out", str(out), "--clips", "1", "--targets", "guitar", "--no-model"]
    assert main([*argv, "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert report["model"] is None and "today's model: voice" not in report["summary"]
    assert "harmonic dist (dB)" in out.with_suffix(".md").read_text()
    assert main(["--data", str(tmp_path / "missing"), "--out", str(out), "--no-model", "--quiet"]) == 2
    assert main([*argv, "--targets", "violin", "--quiet"]) == 2  # not in this dataset: one-line error
