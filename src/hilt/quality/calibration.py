"""Reviewer calibration: gold accuracy with Wilson intervals (per item where the outcomes
of one item are correlated) and the reviewer status machine."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

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

    Unlike the normal (Wald) interval it stays inside [0, 1] and behaves at 0/n and n/n,
    where the bound is exactly 0 (or 1), so the interval always holds its estimate. Each
    element is computed by :func:`hilt.train.stats.wilson_interval` (one implementation of
    the formula). With no trials the interval is the whole range (0, 1). ``confidence``
    must lie strictly between 0 and 1: at 1 the normal quantile is infinite (NaN bounds),
    at 0 the interval has no width, and outside the range it comes out inverted.

    Reference: E. B. Wilson (1927), JASA 22(158):209–212; L. D. Brown, T. T. Cai,
    A. DasGupta (2001), "Interval estimation for a binomial proportion", Stat. Sci. 16(2).
    """
    from hilt.train.stats import wilson_interval as scalar_wilson

    z = _normal_quantile(confidence)
    k, n = np.broadcast_arrays(np.asarray(successes, dtype=np.float64),
                               np.asarray(trials, dtype=np.float64))
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("need 0 <= successes <= trials")
    low = np.empty(k.shape, dtype=np.float64)
    high = np.empty(k.shape, dtype=np.float64)
    for index, (hits, size) in enumerate(zip(k.ravel().tolist(), n.ravel().tolist(),
                                             strict=True)):
        low.flat[index], high.flat[index] = scalar_wilson(hits, size, z)
    return low, high


def _normal_quantile(confidence: float) -> float:
    if (isinstance(confidence, bool) or not isinstance(confidence, int | float)
            or not 0 < confidence < 1):
        raise ValueError(f"confidence must lie strictly between 0 and 1, not {confidence!r}")
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


@dataclass(frozen=True)
class ItemRate:
    """A rate over items that each hold one or more correlated outcomes, with its
    item-level interval (:func:`item_wilson_interval`)."""

    value: float | None
    """Pooled share: successes over trials, every outcome weighted alike."""
    ci_low: float
    ci_high: float
    successes: float
    trials: float
    n_items: int
    """Items (independent units) the outcomes come from."""
    n_effective: float
    """Kish's effective number of items, ``(Σ t_u)² / Σ t_u²``; the ``n`` of the
    interval."""


def item_wilson_interval(successes: npt.ArrayLike, trials: npt.ArrayLike,
                         confidence: float = 0.95) -> ItemRate:
    r"""Interval for a pooled share whose outcomes come in correlated groups (items).

    Item :math:`u` has :math:`y_u` successes in :math:`t_u` trials (the questions of one
    gold task, the reviewer pairs of one resolved item, or one [0, 1] score with
    :math:`t_u = 1`). The estimate is :math:`\hat p = \sum y_u / \sum t_u`. The items are
    the independent units; the outcomes within one item are not (a misread item makes
    several errors at once), so counting them as trials would make the interval too
    narrow. Each item's share :math:`s_u = y_u / t_u` lies in [0, 1], so its variance is
    at most :math:`p(1 - p)` whatever the correlation within the item (Bhatia & Davis
    2000), and with fixed weights :math:`\operatorname{Var}\hat p \le p(1-p)/n_e`, where
    :math:`n_e = (\sum t_u)^2 / \sum t_u^2` is Kish's effective number of items. The
    interval is therefore Wilson's with :math:`n_e` trials and :math:`\hat p\, n_e`
    successes: conservative when the outcomes of an item vary independently, right when
    they move together, exact Wilson when every item holds one outcome, never of zero
    width at 0 or 1 (unlike a bootstrap, which cannot see variation the sample lacks),
    and never narrower because the data show more variation.

    References: M. Bhatia and C. Davis (2000), "A better bound on the variance", Amer.
    Math. Monthly 107(4):353–357; L. Kish (1965), *Survey Sampling*, §11.7.
    """
    y = np.asarray(successes, dtype=np.float64).ravel()
    t = np.asarray(trials, dtype=np.float64).ravel()
    if y.shape != t.shape:
        raise ValueError("successes and trials must have one entry per item")
    if not (np.isfinite(y) & np.isfinite(t) & (y >= 0) & (y <= t)).all():
        # NaN fails every comparison, so it is named here or it would pass as a count.
        raise ValueError("need 0 <= successes <= trials for every item (finite numbers)")
    keep = t > 0
    y, t = y[keep], t[keep]
    total, hits = float(t.sum()), float(y.sum())
    if total <= 0:
        _normal_quantile(confidence)
        return ItemRate(None, 0.0, 1.0, 0.0, 0.0, 0, 0.0)
    share = min(hits / total, 1.0)
    effective = total * total / float((t * t).sum())
    low, high = wilson_interval(share * effective, effective, confidence)
    return ItemRate(share, float(low), float(high), hits, total, int(t.size), effective)


def expected_count_interval(expected: float, trials: int, confidence: float = 0.95
                            ) -> tuple[float | None, float, float]:
    """``(share, low, high)`` of a model's expected count of successes (e.g. a
    Dawid–Skene reviewer's expected correct answers, ``accuracy × answers``): Wilson's
    interval on that count. It covers the sampling of the answers only, not the
    model's own estimation error; ``(None, 0, 1)`` without trials.

    A sum of posteriors may pass 0 or ``trials`` by a rounding residue, which is taken
    as the bound it passes (share included); a count further outside, NaN, or infinite,
    or a number of trials that is negative or not finite, is a ``ValueError`` rather
    than a share outside [0, 1] beside an interval that looks measured."""
    if not (_finite(expected) and _finite(trials)) or trials < 0:
        raise ValueError(f"an expected count needs finite numbers and trials >= 0, not "
                         f"{expected!r} of {trials!r}")
    slack = _ROUNDING * max(float(trials), 1.0)
    if not -slack <= expected <= trials + slack:
        raise ValueError(f"an expected count must lie between 0 and the trials, not "
                         f"{expected!r} of {trials!r}")
    expected = min(max(float(expected), 0.0), float(trials))
    low, high = wilson_interval(expected, trials, confidence)
    return (expected / trials if trials else None), float(low), float(high)


# relative residue of summing up to millions of posteriors in float64, with a wide margin
_ROUNDING = 1e-9


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except (OverflowError, TypeError):  # an integer too large for a float; not a number
        return False


def format_rate(successes: float, trials: float, low: float, high: float,
                confidence: float) -> str:
    """``"16/22, 95% CI 0.52–0.87"``: a count with its interval, for reasons and
    messages."""
    count = f"{successes:g}/{trials:g}"
    return f"{count}, {confidence * 100:g}% CI {low:.2f}–{high:.2f}"


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
    """Gold items (distinct units, e.g. gold tasks) in one onboarding calibration round."""
    calibration_pass_accuracy: float = 0.8
    """Share of a round's gold answers that must be right to pass onboarding; no
    question may be clearly below it either (see :func:`replay_status`)."""
    max_calibration_attempts: int = 2
    """Failed rounds after which an onboarding reviewer is suspended."""
    window: int = 50
    """Rolling window of production gold: the last this many gold items (with all of
    their answers)."""
    min_window_items: int = 20
    """The rolling accuracy is only acted on once the window holds this many gold
    items."""
    probation_accuracy: float = 0.75
    """Rolling accuracy below this puts a calibrated reviewer on probation."""
    probation_length: int = 20
    """Gold items a reviewer on probation completes before the verdict."""
    recovery_accuracy: float = 0.85
    """Share of the probation round's gold answers that must be right to return to
    calibrated (else suspended); no question may be clearly below it either."""
    confidence: float = 0.95
    """Confidence level of the Wilson intervals in reports."""
    cusum: CusumConfig = field(default_factory=CusumConfig)
    """Trend detector on production gold answers."""
    min_window_answers: int | None = None
    """Former name of ``min_window_items``, with the same meaning (gold items), so that
    settings written with it still load; it is moved to ``min_window_items`` and reads
    ``None`` afterwards."""

    def __post_init__(self) -> None:
        # A fractional size would change what a round or window means (and slicing
        # with it fails), so sizes must be true integers.
        for name in ("calibration_set_size", "max_calibration_attempts", "window",
                     "min_window_items", "probation_length"):
            require_int(name, getattr(self, name), minimum=1)
        if self.min_window_answers is not None:
            require_int("min_window_answers", self.min_window_answers, minimum=1)
            default = type(self).__dataclass_fields__["min_window_items"].default
            if self.min_window_items not in (default, self.min_window_answers):
                raise SettingError("min_window_answers",
                                   "is the former name of min_window_items: give one "
                                   "of them")
            object.__setattr__(self, "min_window_items", self.min_window_answers)
            object.__setattr__(self, "min_window_answers", None)
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
    round_items: int = 0
    """Gold items in the round still open at the end (an onboarding calibration set or a
    probation round); 0 in the other statuses."""
    failed_rounds: int = 0
    """Onboarding calibration sets failed so far (while still onboarding)."""
    open_round: str | None = None
    """The open round in words, e.g. ``calibration set not complete (2 of 10 gold
    items)``; None outside onboarding and probation."""


def replay_status(correct: Sequence[bool] | npt.ArrayLike,
                  config: CalibrationConfig = CalibrationConfig(),
                  start: ReviewerStatus = ReviewerStatus.ONBOARDING,
                  units: Sequence[Any] | None = None,
                  questions: Sequence[Any] | None = None) -> StatusTrace:
    """Walk a reviewer's gold outcomes (chronological) through the status machine.

    ``units`` (one per outcome, e.g. the gold task of each gold question) groups the
    outcomes of one gold *item*; without it every outcome is an item of its own. The
    outcomes of an item are the consecutive run that carries its unit (one gold review
    gives all of its answers at once). ``questions`` (one per outcome, e.g. the gold
    question's id; ``None`` for an outcome of no known question) lets a round judge
    each question on its own as well.

    - **onboarding**: gold items are taken in rounds of ``calibration_set_size`` distinct
      items (the calibration set); a round closes when the answers of its last item are
      in. A round that passes at ``calibration_pass_accuracy`` (below) → calibrated;
      after ``max_calibration_attempts`` failed rounds → suspended.
    - **calibrated**: each production gold answer updates the CUSUM; the rolling window
      holds the last ``window`` gold items. A CUSUM alarm → probation; so does, when an
      item is complete, a rolling accuracy below ``probation_accuracy`` once the window
      holds ``min_window_items`` items.
    - **probation**: after ``probation_length`` gold items (counted from the first item
      that starts after the move), a round that passes at ``recovery_accuracy`` →
      calibrated (CUSUM and window restart), else → suspended.
    - **suspended**: final here; reinstating someone is a person's decision, recorded
      elsewhere, after which the replay can restart with ``start``.

    A round passes when the share of its answers that are right, over a whole number of
    items, is at least the bar, and no question is clearly below the bar: a question
    fails the round when the Wilson interval of its right answers over the round's
    items (:func:`item_wilson_interval`, one answer per item) lies wholly below the
    bar. With a five-question rubric, a reviewer who gets the verdict wrong on all ten
    items and the four other questions right has 40/50 = 0.8, but the verdict's 0/10
    (95% CI 0.00–0.28) fails the round; one who is merely unlucky on ten items (6/10,
    CI 0.31–0.83) does not. The pooled share quotes the item-level interval
    (:func:`item_wilson_interval`, on Kish's effective number of items), e.g. ``passed
    calibration set (27/30 from 10 items, 95% CI 0.60–0.98)``; a failing question is
    named with its count and interval, e.g. ``failed calibration 1 times (last 40/50
    from 10 items, 95% CI 0.49–0.94; question 'verdict': 0/10, 95% CI 0.00–0.28, below
    0.8)``. The rolling accuracy is the pooled share over the window's items with the
    same item-level interval: ``rolling accuracy 0.73 below 0.75 over the last 20 gold
    items (44/60 from 20 items, 95% CI 0.51–0.88)``. All intervals are at
    ``config.confidence``.
    """
    outcomes = [bool(value) for value in np.asarray(correct, dtype=bool).tolist()]
    unit_of = list(units) if units is not None else list(range(len(outcomes)))
    if len(unit_of) != len(outcomes):
        raise ValueError("units must name one item per outcome")
    question_of = list(questions) if questions is not None else [None] * len(outcomes)
    if len(question_of) != len(outcomes):
        raise ValueError("questions must name one question per outcome")
    # Whether outcome i is the last answer of its item's run.
    ends_item = [i + 1 == len(outcomes) or bool(unit_of[i + 1] != unit_of[i])
                 for i in range(len(outcomes))]

    def rate_of(tallies: Iterable[Sequence[int]]) -> ItemRate:
        """Pooled share of ``[right answers, answers]`` per item, with the item-level
        interval (the items are the independent units)."""
        counts = np.array(list(tallies), dtype=np.float64).reshape(-1, 2)
        return item_wilson_interval(counts[:, 0], counts[:, 1], config.confidence)

    def rate_text(rate: ItemRate) -> str:
        text = format_rate(rate.successes, rate.trials, rate.ci_low, rate.ci_high,
                           config.confidence)
        if rate.n_items != rate.trials:
            head, _, tail = text.partition(", ")
            text = f"{head} from {rate.n_items} items, {tail}"
        return text

    def judge(bar: float) -> tuple[bool, str]:
        """Whether the open round passes at ``bar``, and its count and interval (with
        every question whose interval lies wholly below the bar)."""
        pooled = rate_of(items.values())
        text = rate_text(pooled)
        below = []
        for question, per_item in by_question.items():
            rate = rate_of(per_item.values())
            if rate.ci_high < bar:
                below.append(f"question {str(question)!r}: {rate_text(rate)}, "
                             f"below {bar:g}")
        passed = (pooled.value or 0.0) >= bar and not below
        return passed, "; ".join([text, *below])

    def add_to_round(index: int) -> None:
        right, unit, question = outcomes[index], unit_of[index], question_of[index]
        tally = items.setdefault(unit, [0, 0])
        tally[0], tally[1] = tally[0] + right, tally[1] + 1
        if question is not None:
            tally = by_question.setdefault(question, {}).setdefault(unit, [0, 0])
            tally[0], tally[1] = tally[0] + right, tally[1] + 1

    status = start
    changes: list[StatusChange] = []
    alarm_index: int | None = None
    attempts = 0
    # Items of the open onboarding or probation round: unit -> [right answers, answers],
    # and the same per question: question -> unit -> [right answers, answers].
    items: dict[Any, list[int]] = {}
    by_question: dict[Any, dict[Any, list[int]]] = {}
    # After a move to probation inside an item, the rest of that item's answers belong
    # to the item that caused the move, not to the probation round.
    skip_item = False
    cusum = 0.0
    # The rolling window: the last `window` gold items as (unit, [right, answers]).
    window: list[tuple[Any, list[int]]] = []

    def move(index: int, new: ReviewerStatus, reason: str) -> None:
        nonlocal status
        changes.append(StatusChange(index, status, new, reason))
        status = new

    for index, right in enumerate(outcomes):
        if skip_item and unit_of[index] == unit_of[index - 1]:
            continue
        skip_item = False
        if status is ReviewerStatus.ONBOARDING:
            add_to_round(index)
            if len(items) >= config.calibration_set_size and ends_item[index]:
                attempts += 1
                passed, text = judge(config.calibration_pass_accuracy)
                if passed:
                    move(index, ReviewerStatus.CALIBRATED, f"passed calibration set ({text})")
                    cusum, window = 0.0, []
                elif attempts >= config.max_calibration_attempts:
                    move(index, ReviewerStatus.SUSPENDED,
                         f"failed calibration {attempts} times (last {text})")
                items, by_question = {}, {}
        elif status is ReviewerStatus.CALIBRATED:
            increment = (config.cusum.correct_increment if right
                         else config.cusum.error_increment)
            cusum = max(0.0, cusum + increment)
            if not window or ends_item[index - 1]:
                window.append((unit_of[index], [0, 0]))
            tally = window[-1][1]
            tally[0], tally[1] = tally[0] + right, tally[1] + 1
            if cusum > config.cusum.threshold:
                alarm_index = index if alarm_index is None else alarm_index
                move(index, ReviewerStatus.PROBATION, "quality trend alarm (CUSUM)")
            elif ends_item[index]:
                window = window[-config.window:]
                # Grouped by unit, in case one gold item came back later in the window.
                grouped: dict[Any, list[int]] = {}
                for unit, (hits, answers) in window:
                    pooled = grouped.setdefault(unit, [0, 0])
                    pooled[0], pooled[1] = pooled[0] + hits, pooled[1] + answers
                rate = rate_of(grouped.values())
                rolling = float(rate.value or 0.0)
                if (len(window) >= config.min_window_items
                        and rolling < config.probation_accuracy):
                    move(index, ReviewerStatus.PROBATION,
                         f"rolling accuracy {rolling:.2f} below {config.probation_accuracy} "
                         f"over the last {len(window)} gold items ({rate_text(rate)})")
            if status is ReviewerStatus.PROBATION:
                items, by_question, skip_item = {}, {}, not ends_item[index]
        elif status is ReviewerStatus.PROBATION:
            add_to_round(index)
            if len(items) >= config.probation_length and ends_item[index]:
                passed, text = judge(config.recovery_accuracy)
                if passed:
                    move(index, ReviewerStatus.CALIBRATED, f"recovered on probation ({text})")
                    cusum, window = 0.0, []
                else:
                    move(index, ReviewerStatus.SUSPENDED,
                         f"did not recover on probation ({text})")
                items, by_question = {}, {}
    open_round = None
    if status is ReviewerStatus.ONBOARDING:
        failed = f", {attempts} failed before" if attempts else ""
        open_round = (f"calibration set not complete ({len(items)} of "
                      f"{config.calibration_set_size} gold items{failed})")
    elif status is ReviewerStatus.PROBATION:
        open_round = (f"probation round not complete ({len(items)} of "
                      f"{config.probation_length} gold items)")
    open_now = status in (ReviewerStatus.ONBOARDING, ReviewerStatus.PROBATION)
    return StatusTrace(status=status, changes=changes, trend_alarm_index=alarm_index,
                       round_items=len(items) if open_now else 0,
                       failed_rounds=attempts if status is ReviewerStatus.ONBOARDING else 0,
                       open_round=open_round)
