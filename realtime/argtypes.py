"""argparse types with ranges: every numeric option is checked at the parser, one line, exit 2.

Why a module of its own: `float("nan")` and `float("inf")` parse, and argparse's plain `type=float`
lets them through to the engine, where they surface as tracebacks or nonsense figures (a negative
latency). Each type here names its range in the error, so the user sees what would be accepted:

    --margin-ms nan   ->  stylehost render: error: argument --margin-ms: nan is not a finite number
    --strength 0      ->  stylehost render: error: argument --strength: 0 is outside (0, 1]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    return f"{left}{lo_s}, {hi_s}{right}"


def _check(value: float, text: str, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> None:
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise argparse.ArgumentTypeError(f"{text} is outside {_interval(lo, hi, lo_open, hi_open)}")
    if hi is not None and (value > hi or (hi_open and value == hi)):
        raise argparse.ArgumentTypeError(f"{text} is outside {_interval(lo, hi, lo_open, hi_open)}")


def ranged_float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                 hi_open: bool = False) -> Callable[[str], float]:
    """A finite float in [lo, hi] (ends open where asked; None = unbounded on that side)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        _check(value, text, lo, hi, lo_open, hi_open)
        return value

    parse.__name__ = "number"  # argparse names the type in some messages
    return parse


def ranged_int(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An integer in [lo, hi] (None = unbounded on that side)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        _check(value, text, lo, hi, False, False)
        return value

    parse.__name__ = "integer"
    return parse


def ranged_int_list(lo: int | None = None, hi: int | None = None) -> Callable[[str], list[int]]:
    """A comma-separated list of integers, each in [lo, hi] ('128,256')."""
    one = ranged_int(lo, hi)

    def parse(text: str) -> list[int]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{text!r} is not a list of integers")
        return [one(t) for t in items]

    parse.__name__ = "integer list"
    return parse
