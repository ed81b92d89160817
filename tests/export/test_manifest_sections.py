"""Eval tables and recommended settings are added to a bundle's manifest without breaking it."""

import argparse
import shutil
from pathlib import Path

import pytest

from diffusion.errors import StylehostError
from export.bundle import Bundle, load_bundle, update_manifest
from realtime.commands import params_from_args, processor_factory


def copy_of(bundle: Bundle, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(bundle.path, dst)
    return dst


def test_update_manifest_adds_sections_and_keeps_hashes(bundle: Bundle, tmp_path: Path) -> None:
    path = copy_of(bundle, tmp_path)
    updated = update_manifest(path, {"eval": {"overall": {"model": {"log_mel_db": 1.0}}},
                                     "defaults": {"steps": 1, "strength": 0.8}})
    assert updated.manifest["eval"]["overall"]["model"]["log_mel_db"] == 1.0
    assert updated.defaults == {"steps": 1, "strength": 0.8, "emit": bundle.emit}  # emit: the trained one
    assert load_bundle(path).manifest["files"] == bundle.manifest["files"]  # still verifies every hash


def test_bad_defaults_are_refused_and_the_manifest_is_left_alone(bundle: Bundle, tmp_path: Path) -> None:
    path = copy_of(bundle, tmp_path)
    before = (path / "manifest.json").read_bytes()
    for bad in ({"steps": 0}, {"strength": 1.5}, {"steps": "two"}, {"emit": 0}, {"emit": 99}):
        with pytest.raises(StylehostError, match="defaults"):
            update_manifest(path, {"defaults": bad})
    assert (path / "manifest.json").read_bytes() == before
    assert not list(path.glob("*.tmp"))


def test_cli_takes_steps_and_strength_from_the_bundle_unless_given(bundle: Bundle, tmp_path: Path) -> None:
    path = copy_of(bundle, tmp_path)
    update_manifest(path, {"defaults": {"steps": 1, "strength": 0.6}})
    factory, passthrough = processor_factory(str(path), "cpu")
    assert not passthrough
    args = argparse.Namespace(style="violin", steps=None, strength=None, wet=1.0)
    params = params_from_args(args, factory)
    assert (params.steps, params.strength) == (1, 0.6)
    args = argparse.Namespace(style="violin", steps=4, strength=0.3, wet=1.0)
    assert (params_from_args(args, factory).steps, params_from_args(args, factory).strength) == (4, 0.3)


def test_the_factory_runs_the_bundles_recommended_emit(bundle: Bundle, tmp_path: Path) -> None:
    path = copy_of(bundle, tmp_path)
    update_manifest(path, {"defaults": {"steps": 1, "strength": 0.7, "emit": 2}})
    factory, _ = processor_factory(str(path), "cpu")
    assert factory().stride == 2 * bundle.spectrogram.hop
