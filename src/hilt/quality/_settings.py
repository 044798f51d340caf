"""Checks of setting values shared by the quality configurations.

Settings usually come from a YAML file or a JSON body, so the types are checked as well
as the ranges: ``2.5`` where a count belongs would otherwise reach a slice or a
comparison deep inside a model (or silently change what a count means), and ``"no"``
where a switch belongs is a true value in Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any


class SettingError(ValueError):
    """A setting with a bad value; ``field`` names the setting, ``reason`` the problem."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field, self.reason = field, reason


def require_int(name: str, value: Any, *, minimum: int | None = None,
                maximum: int | None = None) -> None:
    """An integer (not a bool, not a float with an integral value) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingError(name, f"must be an integer, not {value!r}")
    if minimum is not None and value < minimum:
        raise SettingError(name, f"must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise SettingError(name, f"must be at most {maximum}, not {value}")


def require_number(name: str, value: Any, *, low: float | None = None,
                   high: float | None = None, low_open: bool = False,
                   high_open: bool = False) -> None:
    """A finite real number (int or float, not a bool) within the bounds."""
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value)):
        raise SettingError(name, f"must be a finite number, not {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not (too_low or too_high):
        return
    if high is None:
        bound = f"be greater than {low:g}" if low_open else f"be at least {low:g}"
    elif low is None:
        bound = f"be less than {high:g}" if high_open else f"be at most {high:g}"
    else:
        bound = (f"lie in {'(' if low_open else '['}{low:g}, {high:g}"
                 f"{')' if high_open else ']'}")
    raise SettingError(name, f"must {bound}, not {value}")


def require_bool(name: str, value: Any) -> None:
    """``true`` or ``false`` (YAML/JSON booleans), not a string or a number."""
    if not isinstance(value, bool):
        raise SettingError(name, f"must be true or false, not {value!r}")


def read_settings_file(path: Path | str
                       ) -> tuple[Any, Callable[[tuple[Any, ...]], int | None]]:
    """A YAML (or JSON) settings file: the data, and ``line_of(loc)`` giving the line of a
    key path such as ``("calibration", "window")`` so a bad value is reported on its line.

    Every problem is an :class:`~hilt.errors.InputError` naming the file and, where it
    has one, the line: a file that cannot be read, a byte that is not UTF-8, YAML that
    does not parse, a key repeated in one mapping."""
    from hilt.errors import InputError
    from hilt.review.yamlio import parse_yaml_text

    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=name) from None
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark (no line of its own)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("not UTF-8 text", file=name,
                         line=raw.count(b"\n", 0, exc.start) + 1) from None
    return parse_yaml_text(text, file=name)
