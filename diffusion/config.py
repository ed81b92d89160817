"""Frozen-dataclass configs read from JSON plus ``--set key=value`` overrides, only at entry points.

Nested dataclasses use dotted keys (``--set model.channels=[16,32,64,96]``); values are parsed as
JSON when they parse, else taken as strings (``--set model.styles=["violin","flute"]``). Unknown keys
are an error that lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

from diffusion.errors import StylehostError

T = TypeVar("T")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def valid_keys(cls: type, prefix: str = "") -> list[str]:
    """Every settable dotted key of a (nested) config dataclass."""
    keys = []
    for name, hint in _field_types(cls).items():
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            keys += valid_keys(hint, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _optional_dataclass(hint: Any) -> type | None:
    """The dataclass D of a ``D | None`` field (set as a JSON object, or null), else None."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if type(None) in typing.get_args(hint) and len(args) == 1 and dataclasses.is_dataclass(args[0]):
        return args[0] if isinstance(args[0], type) else None
    return None


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build ``cls`` from plain JSON data; missing keys keep their defaults, lists become tuples."""
    if not isinstance(data, dict):
        raise StylehostError(f"config section {prefix or '<root>'} must be an object, got {data!r}")
    hints = _field_types(cls)
    unknown = [k for k in data if k not in hints]
    if unknown:
        raise StylehostError(
            f"unknown config key(s) {[prefix + k for k in unknown]}; valid keys: {', '.join(valid_keys(cls))}"
        )
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        hint = hints[key]
        optional = _optional_dataclass(hint)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[key] = from_dict(hint, value, f"{prefix}{key}.")
        elif optional is not None and isinstance(value, dict):  # e.g. model.causal: None or a CausalConfig
            kwargs[key] = from_dict(optional, value, f"{prefix}{key}.")
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise StylehostError(f"bad config {prefix or cls.__name__}: {exc}") from exc


def to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON-able dict (tuples become lists) of a (nested) config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def apply_overrides(data: dict[str, Any], overrides: list[str], cls: type) -> dict[str, Any]:
    """Apply ``key=value`` strings to nested plain data, checking keys against ``cls``."""
    valid = set(valid_keys(cls))
    out = json.loads(json.dumps(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise StylehostError(f"--set expects key=value, got {item!r}")
        if key not in valid:
            raise StylehostError(f"unknown config key {key!r}; valid keys: {', '.join(sorted(valid))}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def load_config(cls: type[T], path: Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults <- JSON file <- overrides, in that order."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StylehostError(f"cannot read config file {path}: {exc}") from exc
    return from_dict(cls, apply_overrides(data, overrides or [], cls))


def parse_list(text: str | None, kind: type, name: str) -> list:
    """'128,256' -> [128, 256] for list-valued CLI options; one user error line for anything else."""
    try:
        values = [kind(v.strip()) for v in str(text).split(",") if v.strip()]
    except ValueError as exc:
        raise StylehostError(f"--{name} must be a comma-separated list, got {text!r}") from exc
    if not values:
        raise StylehostError(f"--{name} is empty")
    return values
