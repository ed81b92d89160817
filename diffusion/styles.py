"""The instrument styles the models learn: a General MIDI program and a playable range each.

Ranges are concert pitch (MIDI note numbers) and deliberately a little conservative: the data
renderer transposes every clip so that its notes sit inside as many of these ranges as possible.
"""

from __future__ import annotations

from dataclasses import dataclass

from diffusion.errors import StylehostError


@dataclass(frozen=True)
class Style:
    name: str
    program: int  # General MIDI program, 0-based
    low: int  # lowest comfortable MIDI note
    high: int  # highest comfortable MIDI note


STYLES: tuple[Style, ...] = (
    Style("piano", 0, 21, 108),
    Style("organ", 19, 36, 96),
    Style("guitar", 24, 40, 83),
    Style("violin", 40, 55, 100),
    Style("cello", 42, 36, 76),
    Style("trumpet", 56, 54, 82),
    Style("clarinet", 71, 50, 91),
    Style("flute", 73, 60, 96),
)

STYLE_NAMES: tuple[str, ...] = tuple(s.name for s in STYLES)


def get_style(name: str) -> Style:
    """Look a style up by name; an unknown name is a StylehostError listing the valid ones."""
    for style in STYLES:
        if style.name == name:
            return style
    raise StylehostError(f"unknown style {name!r}; valid styles: {', '.join(STYLE_NAMES)}")


def parse_styles(text: str | None) -> tuple[Style, ...]:
    """Parse a comma-separated style list ('violin,flute'); None or 'all' means every style."""
    if text is None or text.strip() in ("", "all"):
        return STYLES
    names = [t.strip() for t in text.split(",") if t.strip()]
    return tuple(get_style(n) for n in names)
