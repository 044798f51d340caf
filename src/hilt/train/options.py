"""Checks of training settings shared by the command line and the job parameters.

Each check raises :class:`hilt.errors.InputError` naming the option (``--seed``) or the
job parameter (``seed``) it was given as, before any data is read or model loaded.
"""

from __future__ import annotations

import math
from typing import Any

from hilt.errors import InputError

# numpy's and scikit-learn's seeds are unsigned 32-bit integers (torch takes more, but
# every trainer seeds numpy too), and the model registry stores the seed in a signed
# 32-bit column (PostgreSQL's integer): a seed fits both below 2^31
SEED_MAX = 2**31 - 1


def check_seed(value: Any, field: str) -> int:
    """``value`` as a seed, which must be a whole number in 0..2^31 − 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"must be a whole number, got {value!r}", field=field)
    if not 0 <= value <= SEED_MAX:
        raise InputError(f"must lie in 0..{SEED_MAX} (2^31 - 1), got {value}", field=field)
    return value


def check_fraction(value: Any, field: str) -> float:
    """A held-out fraction: a number strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or not 0 < value < 1:
        raise InputError(f"the held-out fraction must lie strictly between 0 and 1, got "
                         f"{value!r}", field=field)
    return float(value)


def check_whole_epochs(value: Any, field: str) -> int:
    """The default reward model's epochs: a whole number, at least 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value < 1 or value != int(value):
        raise InputError(f"the default model trains whole epochs (≥ 1), got {value!r}",
                         field=field)
    return int(value)


def check_positive(value: Any, field: str) -> float:
    """A positive, finite number (epochs of a TRL run, a learning rate): ``nan`` passes a
    comparison with 0, and would stop training with a traceback, or ``inf`` train a
    model of NaN weights."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value <= 0:
        raise InputError(f"must be a positive finite number, got {value!r}", field=field)
    return float(value)
