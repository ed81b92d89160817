"""The shipped default model, run the way users run it (`stylehost render`), restyles test-split clips:
its output is closer to the true target rendering than the unchanged source is."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from diffusion.features import SpectrogramConfig, SpectrogramTransform
from diffusion.metrics import log_mel_distance
from export.bundle import load_bundle
from stylehost.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "models" / "default"
LOW_LATENCY = ROOT / "models" / "low-latency"
PAIRS = [("piano", "flute"), ("flute", "guitar"), ("guitar", "piano")]


def test_default_bundle_is_shipped_and_valid() -> None:
    bundle = load_bundle(DEFAULT)  # verifies every file's sha256 and the manifest
    assert set(bundle.styles) >= {"piano", "organ", "guitar", "violin", "cello", "trumpet", "clarinet", "flute"}
    manifest = json.loads((DEFAULT / "manifest.json").read_text())
    assert manifest["training"]["provenance"]["sessions"], "the manifest says how the model was trained"
    assert "eval" in manifest, "the manifest carries its eval table"


def test_default_bundle_is_the_distilled_student_and_its_table_meets_the_bar() -> None:
    """Issue 4: the best few-step student ships as the default, with the distillation table in its
    manifest; its teacher ships beside it (models/teacher) for `stylehost distill` and comparison."""
    default, teacher = load_bundle(DEFAULT), load_bundle(ROOT / "models" / "teacher")
    assert default.sampler_name == "consistency" and teacher.sampler_name != "consistency"
    manifest = json.loads((DEFAULT / "manifest.json").read_text())
    assert manifest["training"]["teacher"]["sha256"] == teacher.manifest["files"]["model.pt"]["sha256"]
    table = manifest["distillation"]
    assert table["criteria"]["passed"] is True
    assert {f"student {k}" for k in (1, 2, 4)} <= {row["name"] for row in table["rows"]}
    assert manifest["defaults"]["steps"] == 1  # one call per window: what a CPU affords live


@pytest.mark.parametrize("folder", [DEFAULT, LOW_LATENCY], ids=["default", "low-latency"])
def test_shipped_model_beats_the_unchanged_source_on_test_pairs(small_dataset: Path, tmp_path: Path,
                                                                 folder: Path) -> None:
    manifest = json.loads((small_dataset / "manifest.json").read_text())
    clips = [c for c in manifest["clips"] if c["split"] == "test"][:2]
    assert clips, "the small render has test-split clips"
    transform = SpectrogramTransform(SpectrogramConfig())
    model_db, source_db = [], []
    for clip in clips:
        for src, tgt in PAIRS:
            src_path = small_dataset / clip["audio"]["fluidr3"][src]["path"]
            out_path = tmp_path / f"{clip['id']}-{src}-{tgt}.wav"
            assert main(["render", str(src_path), str(out_path), "--style", tgt, "--model", str(folder),
                         "--no-progress"]) == 0
            source, _ = sf.read(src_path, dtype="float32")
            target, _ = sf.read(small_dataset / clip["audio"]["fluidr3"][tgt]["path"], dtype="float32")
            output, sr = sf.read(out_path, dtype="float32")
            assert sr == 24000 and output.shape == source.shape and np.isfinite(output).all()
            model_db.append(log_mel_distance(output, target, transform))
            source_db.append(log_mel_distance(source, target, transform))
    assert np.mean(model_db) < np.mean(source_db), (model_db, source_db)


def test_the_low_latency_bundle_is_the_default_student_12_ms_earlier_end_to_end() -> None:
    """Issue 17: the same denoiser, no look-ahead frame instead of 2, a stage on the shorter low-delay pair
    (synthesis over each frame's last 8 ms, the default's over 12 ms) and a harmonic excitation synthesised as
    each hop arrives (lag 0, so the stage needs no look-ahead): 96 model samples of delay against 384, with the
    trade-off in its manifest."""
    from realtime.backends.choose import open_backend
    from realtime.engine import Engine, EngineConfig
    from realtime.stream_processor import make_processor

    low, default = load_bundle(LOW_LATENCY), load_bundle(DEFAULT)
    assert low.manifest["files"]["model.pt"]["sha256"] == default.manifest["files"]["model.pt"]["sha256"]
    assert low.lookahead == 0 and low.spectrogram.synthesis_len == 192 and low.latency_samples == 96
    assert low.excitation is not None and low.excitation["lag_hops"] == 0 and low.resynth_context[1] == 0
    assert default.spectrogram.synthesis_len == 288 and default.latency_samples == 384  # 480 before issue 17
    assert low.summary and "eval" in low.manifest
    assert "denoiser_int8.onnx" in low.manifest["files"]  # played as fast as the default on a CPU
    cfg = EngineConfig(sample_rate=48000, blocksize=128)
    totals = [Engine(lambda b=b: make_processor(b, open_backend(b, "cpu")), cfg).latency.total for b in (default, low)]
    assert totals[0] - totals[1] == pytest.approx(2 * (384 - 96), abs=0.5)  # 12 ms at 48 kHz


def test_the_default_plays_gated_with_a_gate_fitted_for_its_own_denoiser() -> None:
    """models/default hears, per call, its input or the input's excitation as its gate judges (issue 15). The
    gate was fitted with labels "benefit" on the training split (command, seed and commit recorded), and on the
    validation windows its blend beat both constant choices and kept SoundFont sources where the input had them."""
    from diffusion.input_gate import InputGate

    bundle = load_bundle(DEFAULT)
    assert bundle.denoiser_input == "gated" and bundle.excitation is not None
    gate = bundle.input_gate
    assert gate is not None and gate.n_mels == bundle.spectrogram.n_mels
    fit = gate.fit
    assert fit["labels"] == "benefit" and fit["seed"] == 0 and len(fit["git_commit"]) >= 40
    assert fit["command"].startswith("stylehost gate-fit --data data/paired")
    val = fit["val"]
    assert val["all"]["gate_blended_db"] < min(val["all"]["input_db"], val["all"]["excitation_db"])
    assert val["soundfont"]["gate_blended_db"] <= val["soundfont"]["input_db"] + 0.05
    silence = np.full((gate.n_mels, bundle.window), np.log(1e-5), np.float32)
    assert InputGate(gate, 0.016).raw_weight(silence) == 0.0  # silence hears the input, as a bundle without one
