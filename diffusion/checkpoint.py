"""Checkpoints: plain dicts of state dicts, numbers and the full config, loadable with weights_only=True.

Two kinds of file share one format: a training checkpoint (model, EMA, optimizer, step, history,
for resuming) and a model file (EMA weights and config only, a few MB, what distillation and export
read). Both carry ``model_config`` so a checkpoint from another architecture is refused by name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from diffusion.config import from_dict
from diffusion.errors import StylehostError
from diffusion.model import Denoiser, ModelConfig

FORMAT = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Atomic write (temp file + rename), so an interrupted save never leaves a broken checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": FORMAT, **payload}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise StylehostError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)  # audit: torch-weights-only
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        # audit: torch-error-no-unsafe-advice
        raise StylehostError(f"cannot load checkpoint {path}: {torch_load_reason(exc)}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "model_config" not in ckpt:
        raise StylehostError(f"{path} is not a stylehost checkpoint (format {FORMAT})")
    return ckpt


def torch_load_reason(exc: BaseException) -> str:
    """torch.load's refusal on one line, without its advice to retry with weights_only=False.

    A file that weights_only=True refuses asks the unpickler to call or build something other than
    tensors and plain data: torch's message (many lines, ANSI bold) offers to load it anyway, which is
    how a code-running checkpoint runs. A stylehost checkpoint never needs it, so only the refused
    global is kept: "Unsupported global: GLOBAL io.open was not an allowed global by default".
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    if "Weights only load failed" in text:
        found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s|\.?\s*$)", text, re.MULTILINE)
        what = found.group(1) if found else "it holds more than tensors and plain data"
        return (f"not plain weights ({what}); a stylehost checkpoint holds only tensors and numbers, so this "
                "file is not one: do not load it any other way unless you made it yourself")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def config_differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config dicts."""
    diffs = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: checkpoint {a!r} != config {b!r}")
    return diffs


def check_model_config(ckpt: dict[str, Any], cfg: ModelConfig, path: Path) -> None:
    """Refuse a checkpoint whose model config differs from ``cfg``, naming every differing key."""
    diffs = config_differences(ckpt["model_config"], cfg.to_dict())
    if diffs:
        raise StylehostError(f"checkpoint {path} was trained with another model config: " + "; ".join(diffs))


def model_config_of(ckpt: dict[str, Any]) -> ModelConfig:
    return from_dict(ModelConfig, ckpt["model_config"])


def save_model(path: Path, denoiser: Denoiser, meta: dict[str, Any] | None = None) -> None:
    """The small inference file: weights and model config (plus free-form JSON-able ``meta``)."""
    save_checkpoint(path, {"kind": "model", "model_config": denoiser.cfg.to_dict(),
                           "model": denoiser.state_dict(), "meta": meta or {}})


def build_denoiser(cfg: ModelConfig) -> Denoiser:
    """The network ``cfg`` names: the UNet, or the causal streaming one when ``cfg.causal`` is set (issue 17)."""
    if cfg.causal is None:
        return Denoiser(cfg)
    from diffusion.causal import CausalDenoiser

    return CausalDenoiser(cfg)


def load_denoiser(path: Path, use_ema: bool = True) -> Denoiser:
    """A Denoiser in eval mode from a model file or a training checkpoint (its EMA weights by default)."""
    ckpt = load_checkpoint(path)
    denoiser = build_denoiser(model_config_of(ckpt))
    state = ckpt["ema"] if use_ema and "ema" in ckpt else ckpt["model"]
    try:
        denoiser.load_state_dict(state)
    except RuntimeError as exc:
        raise StylehostError(f"checkpoint {path} does not match its own model config: {exc}") from exc
    return denoiser.eval()


def meta_source_input(meta: dict[str, Any] | None) -> str:
    """What a model file's denoiser was trained to hear (its training config's ``source_input``): "source"
    for every file from before the option existed."""
    return str(((meta or {}).get("config") or {}).get("source_input", "source"))


def model_sampler(path: Path) -> str:
    """The sampler a model file asks for (``meta['sampler']``; teachers have none and use Euler).

    Distilled students are not ODE denoisers any more: run with Euler they would be wrong, so the
    student's file names its sampler and eval, export and the runtime read it from there.
    """
    ckpt = load_checkpoint(path)
    meta = ckpt.get("meta") or {}
    return str(meta.get("sampler", "euler"))
