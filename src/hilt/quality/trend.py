"""Per-reviewer quality over time: Bernoulli CUSUM and rolling accuracy on gold answers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hilt.quality._settings import SettingError, require_number
from hilt.quality.answers import FloatArray


@dataclass(frozen=True)
class CusumConfig:
    r"""A one-sided Bernoulli CUSUM that watches a reviewer's gold error rate.

    ``target_accuracy`` is what a good reviewer achieves (in-control error
    :math:`p_0 = 1 - \text{target}`), ``alarm_accuracy`` the level that must be caught
    (:math:`p_1`), ``threshold`` the decision limit ``h``. With the defaults (0.9, 0.7,
    h = 5), simulation gives: a reviewer steady at 90% raises a false alarm after a median
    of ~1,300 gold answers; one that drops to 60% is flagged after a median of ~16 gold
    answers (95th percentile ~37); one that drops to 70% after ~24 (95th ~65).
    A larger ``h`` means fewer false alarms and slower detection.
    """

    target_accuracy: float = 0.9
    alarm_accuracy: float = 0.7
    threshold: float = 5.0

    def __post_init__(self) -> None:
        for name in ("target_accuracy", "alarm_accuracy", "threshold"):
            require_number(name, getattr(self, name))
        for name in ("target_accuracy", "alarm_accuracy"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise SettingError(name, f"must lie in (0, 1), not {value}")
        if self.alarm_accuracy >= self.target_accuracy:
            # Name the value that was moved off its default: that is the line a
            # settings file holds, so the error points at what was written.
            defaults = type(self).__dataclass_fields__
            if (self.alarm_accuracy == defaults["alarm_accuracy"].default
                    and self.target_accuracy != defaults["target_accuracy"].default):
                raise SettingError("target_accuracy", "must be above alarm_accuracy "
                                   f"({self.alarm_accuracy}), not {self.target_accuracy}")
            raise SettingError("alarm_accuracy", "must be below target_accuracy "
                               f"({self.target_accuracy}), not {self.alarm_accuracy}")
        if self.threshold <= 0:
            raise SettingError("threshold", f"must be positive, not {self.threshold}")

    @property
    def error_increment(self) -> float:
        """Log-likelihood ratio added for a wrong gold answer (positive)."""
        return math.log((1 - self.alarm_accuracy) / (1 - self.target_accuracy))

    @property
    def correct_increment(self) -> float:
        """Log-likelihood ratio added for a right gold answer (negative)."""
        return math.log(self.alarm_accuracy / self.target_accuracy)


def cusum_path(correct: npt.ArrayLike, config: CusumConfig = CusumConfig()) -> FloatArray:
    r"""The CUSUM statistic after each gold answer (chronological order).

    .. math::

        S_0 = 0,\quad S_t = \max\bigl(0,\, S_{t-1} + \log\tfrac{\Pr(x_t \mid p_1)}
        {\Pr(x_t \mid p_0)}\bigr)

    computed without a loop through the identity
    :math:`S_t = C_t - \min(0, \min_{s \le t} C_s)` with :math:`C` the cumulative sum of
    the increments.

    Reference: E. S. Page (1954), "Continuous inspection schemes", Biometrika 41:100–115;
    M. R. Reynolds and Z. G. Stoumbos (1999), "A CUSUM chart for monitoring a proportion
    when inspecting continuously", J. Quality Technology 31(1):87–108.
    """
    outcomes = np.asarray(correct, dtype=bool)
    increments = np.where(outcomes, config.correct_increment, config.error_increment)
    cumulative = np.cumsum(increments)
    return cumulative - np.minimum(0.0, np.minimum.accumulate(cumulative))


def first_alarm(correct: npt.ArrayLike, config: CusumConfig = CusumConfig()) -> int | None:
    """Index (0-based) of the gold answer at which the CUSUM first exceeds the threshold."""
    crossings = np.flatnonzero(cusum_path(correct, config) > config.threshold)
    return int(crossings[0]) if crossings.size else None


def rolling_accuracy(correct: npt.ArrayLike, window: int) -> FloatArray:
    """Share correct over the last ``window`` gold answers, after each answer (the first
    ``window - 1`` values average over the answers seen so far)."""
    if window < 1:
        raise ValueError("window must be at least 1")
    outcomes = np.asarray(correct, dtype=np.float64)
    cumulative = np.concatenate(([0.0], np.cumsum(outcomes)))
    ends = np.arange(1, outcomes.size + 1)
    starts = np.maximum(ends - window, 0)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)
