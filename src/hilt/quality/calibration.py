"""Reviewer calibration: gold accuracy with Wilson intervals and the reviewer status machine."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import stats

from hilt.quality._settings import SettingError, require_int, require_number
from hilt.quality.answers import FloatArray
from hilt.quality.trend import CusumConfig


def wilson_interval(successes: npt.ArrayLike, trials: npt.ArrayLike,
                    confidence: float = 0.95) -> tuple[FloatArray, FloatArray]:
    r"""Wilson score interval for a binomial proportion (vectorised).

    .. math::

        \frac{\hat p + \frac{z^2}{2n} \pm z\sqrt{\frac{\hat p(1-\hat p)}{n}
        + \frac{z^2}{4n^2}}}{1 + \frac{z^2}{n}}

    Unlike the normal (Wald) interval it stays inside [0, 1] and behaves at 0/n and n/n.
    With no trials the interval is the whole range (0, 1). ``confidence`` must lie
    strictly between 0 and 1: at 1 the normal quantile is infinite (NaN bounds), at 0
    the interval has no width, and outside the range it comes out inverted.

    Reference: E. B. Wilson (1927), JASA 22(158):209–212; L. D. Brown, T. T. Cai,
    A. DasGupta (2001), "Interval estimation for a binomial proportion", Stat. Sci. 16(2).
    """
    if (isinstance(confidence, bool) or not isinstance(confidence, int | float)
            or not 0 < confidence < 1):
        raise ValueError(f"confidence must lie strictly between 0 and 1, not {confidence!r}")
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("need 0 <= successes <= trials")
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    safe_n = np.where(n > 0, n, 1.0)
    share = k / safe_n
    denominator = 1.0 + z * z / safe_n
    centre = (share + z * z / (2.0 * safe_n)) / denominator
    half = z * np.sqrt(share * (1.0 - share) / safe_n + z * z / (4.0 * safe_n ** 2)) / denominator
    low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    return low, high


class ReviewerStatus(enum.StrEnum):
    """Where a reviewer stands. Only calibrated and probation reviewers get production work."""

    ONBOARDING = "onboarding"
    CALIBRATED = "calibrated"
    PROBATION = "probation"
    SUSPENDED = "suspended"

    @property
    def may_take_production_tasks(self) -> bool:
        return self in (ReviewerStatus.CALIBRATED, ReviewerStatus.PROBATION)


@dataclass(frozen=True)
class CalibrationConfig:
    """Thresholds of the status machine (see :func:`replay_status`)."""

    calibration_set_size: int = 10
    """Gold answers in one onboarding calibration round."""
    calibration_pass_accuracy: float = 0.8
    """Share of a round that must be right to pass onboarding."""
    max_calibration_attempts: int = 2
    """Failed rounds after which an onboarding reviewer is suspended."""
    window: int = 50
    """Rolling window of production gold answers."""
    min_window_answers: int = 20
    """The rolling accuracy is only acted on once this many answers are in the window."""
    probation_accuracy: float = 0.75
    """Rolling accuracy below this puts a calibrated reviewer on probation."""
    probation_length: int = 20
    """Gold answers a reviewer on probation answers before the verdict."""
    recovery_accuracy: float = 0.85
    """Share of the probation answers needed to return to calibrated (else suspended)."""
    confidence: float = 0.95
    """Confidence level of the Wilson intervals in reports."""
    cusum: CusumConfig = field(default_factory=CusumConfig)
    """Trend detector on production gold answers."""

    def __post_init__(self) -> None:
        # A fractional size would change what a round or window means (and slicing
        # with it fails), so sizes must be true integers.
        for name in ("calibration_set_size", "max_calibration_attempts", "window",
                     "min_window_answers", "probation_length"):
            require_int(name, getattr(self, name), minimum=1)
        for name in ("calibration_pass_accuracy", "probation_accuracy", "recovery_accuracy"):
            require_number(name, getattr(self, name), low=0.0, high=1.0)
        # At 1 the Wilson bounds are NaN, at 0 they have no width.
        require_number("confidence", self.confidence, low=0.0, high=1.0, low_open=True,
                       high_open=True)
        if not isinstance(self.cusum, CusumConfig):
            raise SettingError("cusum", f"must be a CusumConfig, not {self.cusum!r}")


@dataclass(frozen=True)
class StatusChange:
    """One transition: after gold answer ``index`` (0-based, chronological)."""

    index: int
    old: ReviewerStatus
    new: ReviewerStatus
    reason: str


@dataclass(frozen=True)
class StatusTrace:
    """The outcome of replaying a reviewer's gold answers through the status machine."""

    status: ReviewerStatus
    changes: list[StatusChange]
    trend_alarm_index: int | None
    """First gold answer at which the CUSUM alarmed while calibrated (None: no alarm)."""


def replay_status(correct: Sequence[bool] | npt.ArrayLike,
                  config: CalibrationConfig = CalibrationConfig(),
                  start: ReviewerStatus = ReviewerStatus.ONBOARDING) -> StatusTrace:
    """Walk a reviewer's gold outcomes (chronological) through the status machine.

    - **onboarding**: gold answers are taken in rounds of ``calibration_set_size`` (the
      calibration set). A round with accuracy ≥ ``calibration_pass_accuracy`` →
      calibrated; after ``max_calibration_attempts`` failed rounds → suspended.
    - **calibrated**: each production gold answer updates the CUSUM and the rolling
      window. A CUSUM alarm, or a rolling accuracy below ``probation_accuracy`` once the
      window holds ``min_window_answers`` → probation.
    - **probation**: after ``probation_length`` gold answers, accuracy over them ≥
      ``recovery_accuracy`` → calibrated (CUSUM and window restart), else → suspended.
    - **suspended**: final here; reinstating someone is a person's decision, recorded
      elsewhere, after which the replay can restart with ``start``.
    """
    outcomes = [bool(value) for value in np.asarray(correct, dtype=bool).tolist()]
    status = start
    changes: list[StatusChange] = []
    alarm_index: int | None = None
    round_total = round_right = attempts = 0
    cusum = 0.0
    window: list[bool] = []

    def move(index: int, new: ReviewerStatus, reason: str) -> None:
        nonlocal status
        changes.append(StatusChange(index, status, new, reason))
        status = new

    for index, right in enumerate(outcomes):
        if status is ReviewerStatus.ONBOARDING:
            round_total, round_right = round_total + 1, round_right + right
            if round_total == config.calibration_set_size:
                attempts += 1
                share = round_right / round_total
                if share >= config.calibration_pass_accuracy:
                    move(index, ReviewerStatus.CALIBRATED,
                         f"passed calibration set ({round_right}/{round_total})")
                    cusum, window = 0.0, []
                elif attempts >= config.max_calibration_attempts:
                    move(index, ReviewerStatus.SUSPENDED,
                         f"failed calibration {attempts} times (last {round_right}/{round_total})")
                round_total = round_right = 0
        elif status is ReviewerStatus.CALIBRATED:
            increment = (config.cusum.correct_increment if right
                         else config.cusum.error_increment)
            cusum = max(0.0, cusum + increment)
            window = (window + [right])[-config.window:]
            rolling = sum(window) / len(window)
            if cusum > config.cusum.threshold:
                alarm_index = index if alarm_index is None else alarm_index
                move(index, ReviewerStatus.PROBATION, "quality trend alarm (CUSUM)")
                round_total = round_right = 0
            elif (len(window) >= config.min_window_answers
                  and rolling < config.probation_accuracy):
                move(index, ReviewerStatus.PROBATION,
                     f"rolling accuracy {rolling:.2f} below {config.probation_accuracy}")
                round_total = round_right = 0
        elif status is ReviewerStatus.PROBATION:
            round_total, round_right = round_total + 1, round_right + right
            if round_total == config.probation_length:
                share = round_right / round_total
                if share >= config.recovery_accuracy:
                    move(index, ReviewerStatus.CALIBRATED,
                         f"recovered on probation ({round_right}/{round_total})")
                    cusum, window = 0.0, []
                else:
                    move(index, ReviewerStatus.SUSPENDED,
                         f"did not recover on probation ({round_right}/{round_total})")
                round_total = round_right = 0
    return StatusTrace(status=status, changes=changes, trend_alarm_index=alarm_index)
