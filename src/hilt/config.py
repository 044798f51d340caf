"""Where hilt keeps its state, and how settings are read from the environment.

One environment variable decides the database. Numeric settings go through
:func:`env_int` / :func:`env_float`, so that a bad value is one error line naming the
variable (exit code 2), never a traceback from deep inside a server or worker.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from hilt.errors import InputError

DEFAULT_HOME = Path(".hilt")


def hilt_home() -> Path:
    return Path(os.environ.get("HILT_HOME", str(DEFAULT_HOME)))


def database_url() -> str:
    """``HILT_DATABASE_URL`` wins; otherwise a SQLite file ``$HILT_HOME/hilt.db``
    (``./.hilt/hilt.db`` when ``HILT_HOME`` is not set)."""
    url = os.environ.get("HILT_DATABASE_URL")
    if url:
        return url
    home = hilt_home()
    return f"sqlite:///{home / 'hilt.db'}"


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None or not value.strip() else value.strip()


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """The integer setting ``name``; unset or empty gives ``default``."""
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{raw!r} is not a whole number", field=name) from None
    if minimum is not None and value < minimum:
        raise InputError(f"{value} is below the minimum {minimum}", field=name)
    return value


def env_float(name: str, default: float, *, minimum: float | None = None,
              above: float | None = None) -> float:
    """The number setting ``name``; unset or empty gives ``default``. NaN and infinities
    are refused: a NaN timeout or interval would make every comparison false."""
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"{raw!r} is not a number", field=name) from None
    if not math.isfinite(value):
        raise InputError(f"{raw!r} is not a finite number", field=name)
    if minimum is not None and value < minimum:
        raise InputError(f"{value:g} is below the minimum {minimum:g}", field=name)
    if above is not None and value <= above:
        raise InputError(f"{value:g} must be greater than {above:g}", field=name)
    return value
