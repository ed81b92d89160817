"""Bundles are data, never code; damaged bundles are refused before any stream starts (what
test_bundle.py does not already cover); presets are validated the same way."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion.errors import StylehostError
from export import bundle as B
from gui.presets import parse_preset
from stylehost.cli import main
from tests.export.tiny import copy_bundle, rehash

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ("realtime", "export", "gui")  # what `live`, `render`, `models` and the panel import


class _Payload:
    """Unpickling this runs ``open(marker, 'w')``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def test_malicious_model_pt_with_matching_hash_is_refused_and_runs_nothing(bundle: B.Bundle, tmp_path: Path) -> None:
    """Guards weights_only=True in the torch backend's loader: a model.pt that is a code-running pickle
    (hash updated to match, so only the loader stands in the way) is refused with one line and the
    payload never runs."""
    from realtime.backends.torch import TorchBackend

    path = copy_bundle(bundle, tmp_path)
    marker = tmp_path / "pwned"
    torch.save({"format": 1, "model_config": {}, "model": _Payload(marker)}, path / "model.pt")
    with pytest.raises(Exception):  # noqa: B017 - the payload is real: weights_only=False would run it
        torch.load(path / "model.pt", weights_only=True)
    rehash(path, "model.pt")
    loaded = B.load_bundle(path)  # hashes match: the manifest alone cannot catch it
    with pytest.raises(StylehostError, match="cannot load checkpoint") as info:
        TorchBackend(loaded)
    assert not marker.exists() and "\n" not in str(info.value)


def test_runtime_never_unpickles() -> None:
    """Guards the rule by source: in the runtime packages every torch.load passes weights_only=True and
    nothing calls pickle, np.load(allow_pickle=True), eval or exec."""
    offenders = []
    for package in RUNTIME:
        for file in (ROOT / package).rglob("*.py"):
            text = file.read_text()
            for call in re.finditer(r"torch\.load\(([^)]*)\)", text):
                if "weights_only=True" not in call.group(1):
                    offenders.append(f"{file}: {call.group(0)}")
            for bad in ("import pickle", "pickle.load", "allow_pickle=True", "import dill", "marshal.load"):
                if bad in text:
                    offenders.append(f"{file}: {bad}")
            offenders += [f"{file}: {m.group(0)}" for m in re.finditer(r"(?<![\w.])(eval|exec)\(", text)]
    checkpoint = (ROOT / "diffusion" / "checkpoint.py").read_text()  # what the torch backend calls
    assert "weights_only=True" in checkpoint and not offenders, offenders


def _unknown_op(path: Path) -> None:
    import onnx

    model = onnx.load(path)
    model.graph.node[0].op_type = "NoSuchOp"
    onnx.save_model(model, path)


@pytest.mark.parametrize(
    "damage,message",
    [(lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "is not a readable ONNX model"),
     (_unknown_op, "onnxruntime cannot load")],
    ids=["truncated", "unknown-op"],
)
def test_truncated_onnx_with_a_matching_hash_is_refused_before_any_stream(
    bundle: B.Bundle, tmp_path: Path, capsys: pytest.CaptureFixture, damage, message: str
) -> None:
    """A damaged denoiser.onnx whose manifest entry was rewritten to match: the hash check passes, so a
    truncated file is refused by the loader's own read of the graph, and a well-formed graph that ONNX
    Runtime cannot build (an unknown op) by ORT's load, as one line, before render opens any file."""
    path = copy_bundle(bundle, tmp_path)
    damage(path / "denoiser.onnx")
    rehash(path, "denoiser.onnx")
    code = main(["render", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--style", "violin",
                 "--model", str(path), "--backend", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out.wav").exists()


def test_a_graph_missing_from_files_is_refused(bundle: B.Bundle, tmp_path: Path) -> None:
    """A manifest whose entry for a graph was removed (so its hash is never checked) is refused."""
    path = copy_bundle(bundle, tmp_path)
    m = json.loads((path / B.MANIFEST).read_text())
    del m["files"]["resynth.onnx"]
    (path / B.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(StylehostError, match="graphs.resynth.file 'resynth.onnx' has no entry in 'files'"):
        B.load_bundle(path)


@pytest.mark.parametrize("how", ["symlink", "absolute", "parent"])
def test_manifest_pointing_outside_the_folder_is_refused(bundle: B.Bundle, tmp_path: Path, how: str) -> None:
    """Guards the bundle-is-one-folder rule: a graph that is a link to (or a path into) another folder is
    refused even when its hash matches, so a bundle cannot make the host read arbitrary files."""
    path = copy_bundle(bundle, tmp_path)
    outside = tmp_path / "elsewhere.onnx"
    shutil.copy(path / "frontend.onnx", outside)
    m = json.loads((path / B.MANIFEST).read_text())
    if how == "symlink":
        (path / "frontend.onnx").unlink()
        (path / "frontend.onnx").symlink_to(outside)
        message = "link or lies outside"
    else:
        name = str(outside) if how == "absolute" else "../elsewhere.onnx"
        m["graphs"]["frontend"]["file"] = name
        m["files"][name] = B.file_entry(outside)
        message = "plain name"
    (path / B.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(StylehostError, match=message):
        B.load_bundle(path)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda m: m["sampler"].update(sigma_max=float("nan")), "sampler.sigma_max must be a finite number"),
        (lambda m: m["sampler"].update(rho=float("inf")), "sampler.rho must be a finite number"),
        (lambda m: m["style_table"][0].__setitem__(0, float("nan")), "style_table must hold finite numbers"),
        (lambda m: m["style_table"][1].__setitem__(0, "0.1"), "style_table must hold finite numbers"),
    ],
)
def test_non_finite_manifest_numbers_are_refused(bundle: B.Bundle, tmp_path: Path, change, message: str) -> None:
    """Guards the manifest's number checks: JSON accepts NaN/Infinity, and a NaN sigma or style row would
    make every model call silently non-finite (the engine would play dry forever)."""
    path = copy_bundle(bundle, tmp_path)
    m = json.loads((path / B.MANIFEST).read_text())
    change(m)
    (path / B.MANIFEST).write_text(json.dumps(m))  # writes NaN / Infinity literals
    with pytest.raises(StylehostError, match=message):
        B.load_bundle(path)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"style_mix": {"violin": float("nan")}}, "finite"),
        ({"style_mix": {"violin": 1.0, "cello": float("inf")}}, "finite"),
        ({"steps": True}, "steps must be one of"),
        ({"strength": float("nan")}, "strength must be in"),
        ({"wet": float("inf")}, "wet must be in"),
        ({"style_mix": {"../../etc/passwd": 1.0}}, "unknown style"),
    ],
)
def test_hostile_preset_values_are_refused(params: dict, message: str) -> None:
    """Guards preset validation against values JSON allows but a stream must never get (NaN weights would
    make the style vector NaN; true is 1 in Python)."""
    with pytest.raises(StylehostError, match=message):
        parse_preset("x", {"version": 1, "params": params})


def test_hostile_preset_pad_is_refused() -> None:
    with pytest.raises(StylehostError, match="pad must be"):
        parse_preset("x", {"version": 1, "params": {}, "pad": [float("nan"), 0.5]})
    assert np.isfinite(parse_preset("x", {"version": 1, "params": {}, "pad": [0.1, 0.5]}).pad).all()
