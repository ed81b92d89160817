"""Tiny randomly initialised denoisers and their bundles, so export and runtime tests take seconds; helpers
that damage a copy of one."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from diffusion.checkpoint import save_model
from diffusion.model import Denoiser, ModelConfig
from export import bundle as B
from export.bundle import Bundle
from export.onnx import export_bundle

TINY = {"channels": (8, 16), "emb_dim": 16, "fourier_dim": 8}


def tiny_model(path: Path, seed: int = 0, meta: dict | None = None, **config: object) -> Path:
    """A saved model file whose weights are perturbed away from the identity init (zeros in the UNet's
    output conv would make every output equal c_skip * x and hide mistakes)."""
    torch.manual_seed(seed)
    d = Denoiser(ModelConfig(**{**TINY, **config}))
    with torch.no_grad():
        for p in d.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_model(path, d, meta)
    return path


def tiny_bundle(root: Path, name: str = "tiny", **kwargs: object) -> Bundle:
    root.mkdir(parents=True, exist_ok=True)
    model = tiny_model(root / f"{name}.pt")
    return export_bundle(model, root / name, **kwargs)


def copy_bundle(bundle: Bundle, tmp_path: Path) -> Path:
    """A copy of the bundle folder to damage (the session's bundle stays intact)."""
    dst = tmp_path / "copy"
    shutil.copytree(bundle.path, dst)
    return dst


def edit_manifest(path: Path, change: Callable[[dict], object]) -> None:
    m = json.loads((path / B.MANIFEST).read_text())
    change(m)
    (path / B.MANIFEST).write_text(json.dumps(m))


def rehash(path: Path, name: str) -> None:
    """Make the manifest agree with a changed (or added) file, as an attacker (or a careless re-packer) would."""
    edit_manifest(path, lambda m: m["files"].update({name: B.file_entry(path / name)}))
