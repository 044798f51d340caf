"""Agreement with uncertainty: a bootstrap over items for every agreement metric."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from hilt.errors import InputError
from hilt.quality.agreement import (
    FleissKappaStatistic,
    KappaWeights,
    PercentAgreementStatistic,
    WeightedStatistic,
)
from hilt.quality.answers import Answers, as_answers, vote_counts
from hilt.quality.krippendorff import LEVELS, KrippendorffAlphaStatistic, Level
from hilt.quality.pairwise_cohen import (
    MAX_PAIR_ENTRIES,
    MeanPairwiseCohenStatistic,
    pair_entries,
)

Metric = Literal["percent", "cohen", "fleiss", "krippendorff"]
METRICS: tuple[Metric, ...] = ("percent", "cohen", "fleiss", "krippendorff")


@dataclass(frozen=True)
class AgreementResult:
    """An agreement value with its bootstrap percentile interval.

    ``value``/``ci_low``/``ci_high`` are ``None`` when undefined; ``note`` says why.
    ``n_items`` counts the items that take part (rated at least twice, or by both
    reviewers for Cohen's kappa); the bootstrap resamples those items with replacement.
    """

    metric: str
    level: str | None
    value: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    n_items: int
    n_reviewers: int
    n_answers: int
    n_resamples: int
    n_resamples_defined: int
    seed: int
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Fewer items than this give a bootstrap distribution of a handful of distinct values
# (2 items: 3 possible resamples), whose percentiles claim a certainty the data lacks.
MIN_BOOTSTRAP_UNITS = 5


def min_resamples(confidence: float) -> int:
    """Fewest resamples for a percentile interval at ``confidence``: each tail, a share
    ``(1 - confidence) / 2`` of the resamples, must hold at least one resample, so
    ``ceil(2 / (1 - confidence))`` (40 at 95 %). With fewer, both bounds are the extreme
    resamples, which need not even bracket the estimate."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    # Rounded first: 2 / (1 - 0.95) is 40.000000000000004 in floating point.
    return math.ceil(round(2.0 / (1.0 - confidence), 9))


def _percentile_bootstrap(statistic: WeightedStatistic, n_resamples: int, confidence: float,
                          seed: int) -> tuple[float, float, int, str | None]:
    """``(low, high, n_defined, reason)``: the interval (widened to hold the estimate), or
    ``nan`` bounds and the reason there is none."""
    needed = min_resamples(confidence)
    if n_resamples < needed:
        raise ValueError(f"n_resamples must be at least {needed} for a {confidence:g} "
                         f"interval (each tail needs a resample), not {n_resamples}")
    nan = float("nan")
    n_units = statistic.n_units
    if n_units < MIN_BOOTSTRAP_UNITS:
        return nan, nan, 0, (f"only {n_units} item(s) take part; an interval needs at least "
                             f"{MIN_BOOTSTRAP_UNITS}")
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    for resample in range(n_resamples):
        draws = rng.integers(0, n_units, size=n_units)
        weights = np.bincount(draws, minlength=n_units).astype(np.float64)
        values[resample] = statistic(weights)
    defined = values[np.isfinite(values)]
    if defined.size < max(needed, n_resamples // 2):
        return nan, nan, int(defined.size), ("too few resamples gave a defined value for "
                                             "an interval")
    if np.ptp(defined) <= 1e-12 * max(1.0, float(np.abs(defined).max())):
        # Every item says the same (e.g. all pairs agree): resampling cannot show the
        # uncertainty, and [v, v] would claim the value is exact.
        return nan, nan, int(defined.size), ("every resample gave the same value (the items "
                                             "do not vary), so the bootstrap cannot "
                                             "measure the uncertainty")
    tail = (1.0 - confidence) / 2.0
    low, high = (float(bound) for bound in np.quantile(defined, [tail, 1.0 - tail]))
    estimate = statistic(np.ones(n_units))
    if math.isfinite(estimate):
        # A skewed bootstrap distribution can put both percentiles on one side of the
        # estimate; an interval that excludes its own estimate reads as a contradiction.
        low, high = min(low, estimate), max(high, estimate)
    return low, high, int(defined.size), None


def bootstrap_interval(statistic: WeightedStatistic, n_resamples: int = 1000,
                       confidence: float = 0.95, seed: int = 0) -> tuple[float, float, int]:
    """Percentile bootstrap interval of a statistic over its units (items).

    A resample draws ``n_units`` items with replacement; it is represented by the number
    of times each item was drawn (a multinomial weight vector), so no data is copied.
    Resamples where the statistic is undefined (e.g. all drawn items in one category) are
    left out. Returns ``(low, high, n_defined)``; the interval is widened where needed to
    hold the estimate itself. The bounds are ``nan`` with fewer than
    :data:`MIN_BOOTSTRAP_UNITS` units, when fewer than half of the resamples (or fewer
    than :func:`min_resamples`) are defined, or when every resample gives the same value.
    ``n_resamples`` below :func:`min_resamples` is a ``ValueError``. Seeded: the same seed
    gives the same interval.

    Reference: B. Efron and R. J. Tibshirani (1993), *An Introduction to the Bootstrap*,
    ch. 13 (percentile interval).
    """
    low, high, defined, _ = _percentile_bootstrap(statistic, n_resamples, confidence, seed)
    return low, high, defined


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds, so that messages show ``1``, not
    ``np.int64(1)``."""
    return value.item() if isinstance(value, np.generic) else value


class UnfitChoice(ValueError):
    """A metric, level or weighting that cannot be computed on these answers (unknown,
    or past a limit such as :data:`~hilt.quality.pairwise_cohen.MAX_PAIR_ENTRIES`):
    ``option`` names the choice to change (``metric``, ``level`` or ``kappa_weights``),
    not a field of the answers."""

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option


def _refuse_repeated_answers(answers: Answers, metric: str) -> None:
    pair_keys = answers.item_index * max(answers.n_reviewers, 1) + answers.reviewer_index
    _, first = np.unique(pair_keys, return_index=True)
    if first.size == pair_keys.size:
        return
    seen = np.zeros(pair_keys.size, dtype=bool)
    seen[first] = True
    repeat = int(np.flatnonzero(~seen)[0])
    earlier = int(np.flatnonzero(pair_keys[:repeat] == pair_keys[repeat])[0])
    reviewer = _plain(answers.reviewers[answers.reviewer_index[repeat]])
    item = _plain(answers.items[answers.item_index[repeat]])
    raise ValueError(f"{metric} needs at most one answer per item and reviewer: reviewer "
                     f"{reviewer!r} answers item {item!r} at row positions {earlier} and "
                     f"{repeat} (counting from 0)")


def _refuse_unfit_numbers(answers: Answers, numeric: np.ndarray, level: str) -> None:
    """Interval and ratio alpha take differences of the labels: an infinite or NaN label
    would make every sum NaN and read as "no variation". Ratio alpha divides by the sum
    of two labels, so it needs a scale that starts at zero: with -3 and 3 counted as
    agreeing (their distance is taken as 0), raters who always differ in sign get 1."""
    finite = np.isfinite(numeric)
    bad = ~finite | ((numeric < 0) if level == "ratio" else np.zeros(numeric.shape, bool))
    rows = np.flatnonzero(bad[answers.label_index])
    if not rows.size:
        return
    code = int(answers.label_index[rows[0]])
    label = _plain(answers.classes[code])
    problem = ("is not a finite number" if not finite[code] else
               "is negative: ratio alpha needs values of at least 0 (use level 'interval' "
               "for a scale without an absolute zero)")
    raise InputError(f"label {label!r} at row position {int(rows[0])} (counting from 0) "
                     f"{problem}", field="label")


def agreement_statistic(answers: Answers, metric: Metric, level: Level = "nominal",
                        kappa_weights: KappaWeights = None) -> WeightedStatistic:
    """The weighted statistic behind :func:`measure_agreement` (items are the units).

    Every metric needs at most one answer per item and reviewer: a repeated answer would
    pair the reviewer with themselves (an agreeing pair, for a resubmitted answer), so it
    is a ``ValueError`` naming the first repeat."""
    _refuse_repeated_answers(answers, metric)
    if metric == "percent":
        return PercentAgreementStatistic(answers.item_index, answers.label_index,
                                         answers.n_items, answers.n_classes)
    if metric == "fleiss":
        return FleissKappaStatistic(vote_counts(answers))
    if metric == "krippendorff":
        if level not in LEVELS:
            raise UnfitChoice(f"unknown level {level!r}; use one of {', '.join(LEVELS)}",
                              "level")
        if level == "ordinal":
            answers = answers.in_order("ordinal Krippendorff's alpha")
        numeric = None
        if level in ("interval", "ratio"):
            try:
                numeric = np.asarray(answers.classes, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"level {level!r} needs numeric labels") from exc
            _refuse_unfit_numbers(answers, numeric, level)
        return KrippendorffAlphaStatistic(answers.item_index, answers.label_index, numeric,
                                          level, answers.n_classes)
    if metric == "cohen":
        if kappa_weights is not None:
            answers = answers.in_order(f"{kappa_weights} weighted Cohen's kappa")
        try:
            return MeanPairwiseCohenStatistic(answers, kappa_weights)
        except ValueError as exc:
            if pair_entries(answers.item_index, answers.n_items) > MAX_PAIR_ENTRIES:
                raise UnfitChoice(str(exc), "metric") from None
            raise
    raise UnfitChoice(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}",
                      "metric")


def measure_agreement(answers: Answers | pd.DataFrame, metric: Metric,
                      level: Level = "nominal", kappa_weights: KappaWeights = None,
                      n_resamples: int = 1000, confidence: float = 0.95,
                      seed: int = 0) -> AgreementResult:
    """One agreement metric over long-format answers, with a bootstrap interval over items.

    The interval (see :func:`bootstrap_interval`) is ``None`` with a ``note`` when it cannot
    be had: fewer than :data:`MIN_BOOTSTRAP_UNITS` items take part, too few resamples are
    defined, or every resample gives the same value. ``n_resamples`` must be at least
    :func:`min_resamples` (40 at 95 %).

    ``metric``: ``percent`` (mean share of agreeing pairs), ``cohen`` (two reviewers;
    with more, Light's kappa, the mean of Cohen's kappa over the reviewer pairs with
    common items whose kappa is defined, see
    :class:`~hilt.quality.pairwise_cohen.MeanPairwiseCohenStatistic`; ``kappa_weights``
    for weighted kappa), ``fleiss`` or ``krippendorff`` (``level`` nominal, ordinal,
    interval or ratio). Ordinal alpha and weighted kappa compare label positions: they use the order
    given as ``classes``, else the numeric order of labels that are (or read as) numbers;
    other text labels without an order are a ``ValueError`` (see :meth:`Answers.in_order`).
    """
    encoded = as_answers(answers)
    statistic = agreement_statistic(encoded, metric, level, kappa_weights)
    value = statistic(np.ones(statistic.n_units))
    low, high, defined, no_interval = _percentile_bootstrap(statistic, n_resamples,
                                                            confidence, seed)
    note = no_interval
    if statistic.n_units == 0:
        note = "no item was rated by two reviewers; agreement is undefined"
    elif not math.isfinite(value):
        note = ("all pairable ratings fall in one category, so chance agreement is perfect "
                "and the chance-corrected value is undefined")

    def _clean(number: float) -> float | None:
        return number if math.isfinite(number) else None

    return AgreementResult(
        metric=metric, level=level if metric == "krippendorff" else None, value=_clean(value),
        ci_low=_clean(low), ci_high=_clean(high), confidence=confidence,
        n_items=statistic.n_units, n_reviewers=encoded.n_reviewers,
        n_answers=encoded.n_answers, n_resamples=n_resamples, n_resamples_defined=defined,
        seed=seed, note=note)
