"""Named panel settings saved as JSON in the user's config folder, validated on load.

A preset is the EngineParams a performer controls plus the mix pad's position. Loading checks keys
and values the way configs do everywhere here (unknown keys are an error listing the valid ones), so
a hand-edited or corrupt file gives a message, never a half-applied state or a traceback.

File format (``<config>/stylehost/presets/<name>.json``)::

    {"version": 1, "params": {"style_mix": {"violin": 0.7, "cello": 0.3}, "strength": 0.7,
     "steps": 4, "wet": 1.0, "input_gain_db": 0.0, "bypass": false}, "pad": [0.2, 0.5]}
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_config_dir

from diffusion.errors import StylehostError
from diffusion.styles import get_style
from realtime.params import EngineParams

VERSION = 1
STEP_CHOICES = (1, 2, 4)
TOP_KEYS = ("version", "params", "pad")
PARAM_KEYS = tuple(f.name for f in dataclasses.fields(EngineParams))
_NAME = re.compile(r"^[\w][\w .-]{0,63}$")


def default_presets_dir() -> Path:
    return Path(user_config_dir("stylehost")) / "presets"


@dataclass(frozen=True)
class Preset:
    name: str
    params: EngineParams
    pad: tuple[float, float] | None = None


class PresetStore:
    """Presets in one folder, one JSON file each."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_presets_dir()

    def path(self, name: str) -> Path:
        if not _NAME.match(name) or name.strip() != name:
            raise StylehostError(
                f"preset name {name!r}: use up to 64 letters, digits, spaces, '.', '_' or '-' (no leading space)"
            )
        return self.directory / f"{name}.json"

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json"))

    def save(self, preset: Preset) -> Path:
        path = self.path(preset.name)
        params = dataclasses.asdict(preset.params)
        params["style_mix"] = dict(preset.params.style_mix)
        data: dict[str, object] = {"version": VERSION, "params": params}
        if preset.pad is not None:
            data["pad"] = list(preset.pad)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            tmp.replace(path)  # never leave a half-written preset behind
        except OSError as exc:
            raise StylehostError(f"cannot save preset {preset.name!r} to {path}: {exc}") from exc
        return path

    def load(self, name: str) -> Preset:
        path = self.path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise StylehostError(f"cannot read preset {name!r} ({path}): {exc.strerror or exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StylehostError(f"preset {name!r} is not valid JSON ({path}, line {exc.lineno}): {exc.msg}") from exc
        return parse_preset(name, data, path)

    def delete(self, name: str) -> None:
        try:
            self.path(name).unlink(missing_ok=True)
        except OSError as exc:
            raise StylehostError(f"cannot delete preset {name!r}: {exc}") from exc


def parse_preset(name: str, data: object, where: Path | str = "preset") -> Preset:
    """Validate decoded JSON into a Preset; every problem is a StylehostError naming the field."""
    if not isinstance(data, dict):
        raise StylehostError(f"preset {name!r} ({where}): expected a JSON object, got {type(data).__name__}")
    _check_keys(data, TOP_KEYS, f"preset {name!r} ({where})")
    if data.get("version", VERSION) != VERSION:
        raise StylehostError(f"preset {name!r} ({where}): version {data.get('version')!r}, this panel reads {VERSION}")
    raw = data.get("params")
    if not isinstance(raw, dict):
        raise StylehostError(f"preset {name!r} ({where}): 'params' must be an object with keys {list(PARAM_KEYS)}")
    _check_keys(raw, PARAM_KEYS, f"preset {name!r} params")
    values = dict(raw)
    mix = values.get("style_mix", {"violin": 1.0})
    if not isinstance(mix, dict) or not all(isinstance(w, int | float) for w in mix.values()):
        raise StylehostError(f"preset {name!r}: style_mix must map style names to numbers, got {mix!r}")
    values["style_mix"] = tuple((str(k), float(w)) for k, w in mix.items())
    for style in values["style_mix"]:
        # The panel's pad and buttons offer the built-in styles, so a preset holds only those; the running
        # bundle's own list is checked when the preset is applied (realtime/session.py).
        get_style(style[0])  # audit: preset-known-styles
    steps = values.get("steps", 4)
    # audit: preset-steps-not-bool
    if isinstance(steps, bool) or steps not in STEP_CHOICES:  # true == 1 in Python: refuse it explicitly
        raise StylehostError(f"preset {name!r}: steps must be one of {STEP_CHOICES}, got {values.get('steps')!r}")
    for key in ("strength", "wet", "input_gain_db"):
        if key in values and (isinstance(values[key], bool) or not isinstance(values[key], int | float)):
            raise StylehostError(f"preset {name!r}: {key} must be a number, got {values[key]!r}")
    for key in ("bypass", "match_level"):
        if key in values and not isinstance(values[key], bool):
            raise StylehostError(f"preset {name!r}: {key} must be true or false, got {values[key]!r}")
    params = EngineParams(**values)  # range checks; StylehostError names the field
    pad = data.get("pad")
    if pad is not None:
        if not (isinstance(pad, list) and len(pad) == 2
                # audit: preset-pad-finite
                and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in pad)):
            raise StylehostError(f"preset {name!r}: pad must be [x, y], got {pad!r}")
        pad = (float(pad[0]), float(pad[1]))
    return Preset(name=name, params=params, pad=pad)


def _check_keys(data: dict, valid: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise StylehostError(f"{what}: unknown keys {unknown}; valid keys: {list(valid)}")
