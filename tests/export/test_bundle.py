"""Bundles: export with self-checked parity, the manifest, refusals of damaged bundles, discovery, `models`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from diffusion.checkpoint import load_denoiser
from diffusion.errors import StylehostError
from export import bundle as B
from export import onnx as O
from stylehost.cli import main
from tests.export.tiny import copy_bundle, edit_manifest, tiny_model


def test_export_writes_a_complete_checked_bundle(bundle: B.Bundle) -> None:
    m = bundle.manifest
    assert m["format"] == B.FORMAT and m["format_version"] == B.FORMAT_VERSION
    assert set(m["files"]) == {"denoiser.onnx", "frontend.onnx", "resynth.onnx", "model.pt"}
    for name, entry in m["files"].items():
        assert entry["sha256"] == B.sha256_file(bundle.path / name)
    d = load_denoiser(bundle.torch_weights)
    np.testing.assert_array_equal(bundle.style_table, d.net.style_table.detach().numpy())
    assert bundle.styles == d.cfg.styles and bundle.spectrogram == d.cfg.spectrogram
    assert (bundle.window, bundle.lookahead, bundle.emit) == (32, 2, 4)
    assert bundle.latency_samples == 384 + 96  # n_fft + (L-1)*hop
    assert bundle.sampler["sigma_max"] == d.cfg.sigma_max and bundle.sampler["logmel_std"] == d.cfg.logmel_std
    assert m["graphs"]["denoiser"]["inputs"][0] == {"name": "x", "dtype": "float32", "shape": ["batch", 1, 64, 32]}
    assert m["graphs"]["resynth"]["outputs"][0]["shape"] == ["batch", "emit", 384]
    for graph in B.GRAPHS:  # measured on random inputs and on real windows of the demo clip
        assert m["parity"][graph]["random"] <= 1e-4 and m["parity"][graph]["real"] <= 1e-4
    assert m["benchmark"]["denoiser_ms_p50"] > 0
    assert not [p for p in bundle.path.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_failing_parity_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model(tmp_path / "m.pt")
    monkeypatch.setattr(O, "TOLERANCE", 0.0)
    with pytest.raises(StylehostError, match="parity check failed.*bundle not written"):
        O.export_bundle(model, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_existing_bundle_needs_force(bundle: B.Bundle, tmp_path: Path) -> None:
    out = copy_bundle(bundle, tmp_path)
    model = tiny_model(tmp_path / "m.pt", seed=3)
    with pytest.raises(StylehostError, match="--force"):
        O.export_bundle(model, out)
    replaced = O.export_bundle(model, out, force=True, torch_weights=False)
    assert replaced.digest != bundle.digest and replaced.torch_weights is None
    assert not (out / "model.pt").exists()


def test_cli_export_prints_parity(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = tiny_model(tmp_path / "m.pt")
    assert main(["export", "onnx", "--model", str(model), "--out", str(tmp_path / "b"), "--version", "1.2"]) == 0
    out = capsys.readouterr().out
    assert "parity vs torch" in out and "ms per call" in out
    assert B.load_bundle(tmp_path / "b").version == "1.2"


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda p: (p / "denoiser.onnx").write_bytes((p / "denoiser.onnx").read_bytes()[:-1] + b"\0"),
         "denoiser.onnx does not match its sha256"),
        (lambda p: (p / "resynth.onnx").unlink(), "missing resynth.onnx"),
        (lambda p: edit_manifest(p, lambda m: m.update(format_version=B.FORMAT_VERSION + 1)),
         "format version 3.*upgrade stylehost"),
        (lambda p: edit_manifest(p, lambda m: m.update(format_version="1")), "'format_version' must be an integer"),
        (lambda p: edit_manifest(p, lambda m: m.update(format_version=0)), "unsupported format version 0"),
        (lambda p: edit_manifest(p, lambda m: m.pop("graphs")), "missing key 'graphs'"),
        (lambda p: edit_manifest(p, lambda m: m.update(style_table=[[0.0]])), "style_table"),
        (lambda p: edit_manifest(p, lambda m: m["files"].update({"../x": {"sha256": ""}})), "plain name"),
        (lambda p: (p / B.MANIFEST).write_text("{not json"), "malformed manifest.*not JSON"),
        (lambda p: (p / B.MANIFEST).unlink(), "no model bundle"),
        (lambda p: edit_manifest(p, lambda m: m.setdefault("defaults", {}).update(margin_ms="3")),
         "defaults.margin_ms must be a number"),
        (lambda p: edit_manifest(p, lambda m: m.setdefault("defaults", {}).update(margin_ms=-1.0)),
         r"defaults.margin_ms .* \[0, 100\]"),
    ],
)
def test_damaged_bundles_are_refused_with_one_clear_error(bundle: B.Bundle, tmp_path: Path, damage, message) -> None:
    path = copy_bundle(bundle, tmp_path)
    damage(path)
    with pytest.raises(StylehostError, match=message) as info:
        B.load_bundle(path)
    assert "\n" not in str(info.value)


def test_tampered_bundle_is_refused_before_any_stream(bundle: B.Bundle, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    path = copy_bundle(bundle, tmp_path)
    (path / "frontend.onnx").write_bytes(b"tampered")
    code = main(["render", "in.wav", "out.wav", "--style", "violin", "--model", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "frontend.onnx does not match its sha256" in err and err.count("\n") == 1


def test_discovery_resolve_and_models_command(bundle: B.Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    repo, user = tmp_path / "repo", tmp_path / "user"
    shutil.copytree(bundle.path, repo / "default")
    shutil.copytree(bundle.path, user / "violins")
    (user / "broken").mkdir()
    (user / "broken" / B.MANIFEST).write_text("[]")
    monkeypatch.setattr(B, "REPO_MODELS", repo)
    monkeypatch.setattr(B, "user_models_dir", lambda: user)
    assert B.resolve(None) == repo / "default"
    assert B.resolve("passthrough") is None
    assert B.resolve("violins") == user / "violins"
    assert B.resolve(str(bundle.path)) == bundle.path
    with pytest.raises(StylehostError, match="no model bundle named 'nope'"):
        B.resolve("nope")
    found = {p.name: item for p, item in B.discover()}
    assert isinstance(found["default"], B.Bundle) and isinstance(found["broken"], StylehostError)
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("broken") and "INVALID" in line for line in lines)
    ok = [line for line in lines if "violins" in line]
    assert ok and "violin, cello" in ok[0] and "latency 480 samples (20.0 ms, window)" in ok[0]
    (repo / "default" / B.MANIFEST).unlink()
    assert B.resolve(None) is None  # no default bundle: the passthrough


def test_models_command_with_nothing_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(B, "REPO_MODELS", tmp_path / "a")
    monkeypatch.setattr(B, "user_models_dir", lambda: tmp_path / "b")
    assert main(["models"]) == 0
    assert "stylehost export onnx --model runs/teacher/model.pt --out models/default" in capsys.readouterr().out


def test_max_steps_comes_from_the_manifest_or_the_sampler(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    student = B.load_bundle(root / "models" / "default")
    assert student.max_steps == 4  # consistency student
    assert B.load_bundle(root / "models" / "teacher").max_steps == 16  # Euler teacher
    path = copy_bundle(student, tmp_path)
    edit_manifest(path, lambda m: m["defaults"].update(max_steps=2))
    assert B.load_bundle(path).max_steps == 2
    edit_manifest(path, lambda m: m["defaults"].update(max_steps=0))
    with pytest.raises(StylehostError, match="max_steps"):
        B.load_bundle(path)


def test_a_denoiser_trained_on_the_excitation_is_exported_only_with_an_excitation_stage(tmp_path: Path) -> None:
    from export.onnx import export_bundle
    from tests.export.tiny import tiny_model

    model = tiny_model(tmp_path / "exc.pt", meta={"config": {"source_input": "excitation"}})
    with pytest.raises(StylehostError, match="trained to hear the harmonic excitation"):
        export_bundle(model, tmp_path / "b")


def test_denoiser_input_in_the_manifest_is_checked(tmp_path: Path) -> None:
    from tests.export.tiny import copy_bundle, edit_manifest, tiny_bundle

    src = tiny_bundle(tmp_path / "src")
    assert src.denoiser_input == "source"
    bad = copy_bundle(src, tmp_path)
    edit_manifest(bad, lambda m: m.update({"denoiser_input": "excitation"}))  # without an excitation section
    with pytest.raises(StylehostError, match="denoiser_input"):
        B.load_bundle(bad)


def test_a_bundle_names_the_compute_margin_it_plays_at(bundle: B.Bundle, tmp_path: Path) -> None:
    """defaults.margin_ms is what live, the panel and the latency benchmark play a bundle at unless told
    otherwise (Session.margin_ms); a bundle without one gets the engine's 6 ms."""
    from realtime.session import Session

    assert bundle.margin_ms == B.DEFAULT_MARGIN_MS == 6.0
    path = copy_bundle(bundle, tmp_path)
    edit_manifest(path, lambda m: m.setdefault("defaults", {}).update(margin_ms=3.5))
    tuned = B.load_bundle(path)
    assert tuned.margin_ms == 3.5
    assert Session(factory=lambda: None, bundle=tuned).margin_ms == 3.5  # type: ignore[arg-type, return-value]
    assert Session(factory=lambda: None).margin_ms == 6.0  # type: ignore[arg-type, return-value]
