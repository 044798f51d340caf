"""The monitors as pure functions over observation streams and time windows.

Three shapes of observation cover every monitor:

- :class:`Categorical` — one categorical value (a final label, one reviewer's answer, the
  topic of an incoming prompt): tested for distribution shift
  (:func:`detect_shift`, chi-square + PSI, see :mod:`.shift`).
- :class:`Outcome` — one Bernoulli trial (a task adjudicated or not, a guideline gap or
  not, an event matched by a rule or not, a gold answer right or wrong): tested for a
  change of rate (:func:`detect_rate_change`, Fisher's exact test, see :mod:`.rates`).
- :class:`Rating` — one reviewer's answer to one item: tested for a fall in agreement
  (:func:`detect_agreement_drop`).

Each observation carries a ``group`` (pairs such as ``("rubric", "harm@2")``,
``("question", "verdict")``, ``("pool", "default")``, ``("reviewer", "r1")``); each group
is tested separately in each window against its reference windows
(:func:`hilt.quality.drift.windows.baseline_windows` or
:func:`~hilt.quality.drift.windows.trailing_range`). A test takes part only when both
the current window and the reference are large enough; the window's false-alarm budget
is divided over the tests that take part (see :mod:`.windows`). A group with data in a
window that could not be tested there is reported through ``untested``
(:class:`Untested`), so that a monitor never goes quiet without saying so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np

from hilt.quality.drift.alerts import Alert, group_key, moved_category
from hilt.quality.drift.rates import (
    Direction,
    agreement_change,
    fisher_p_values,
    item_agreement,
    rate_change,
)
from hilt.quality.drift.shift import (
    chi_square_homogeneity,
    label_shift,
    population_stability_index,
)
from hilt.quality.drift.windows import (
    DriftConfig,
    baseline_windows,
    per_test_alpha,
    trailing_range,
    window_index,
    window_start,
)

Group = tuple[tuple[str, str], ...]
T = TypeVar("T")


class Categorical(NamedTuple):
    at: datetime
    group: Group
    value: str


class Outcome(NamedTuple):
    at: datetime
    group: Group
    success: bool


class Rating(NamedTuple):
    at: datetime
    group: Group
    item: str
    reviewer: str
    label: str


class Untested(NamedTuple):
    """A group with data in ``window`` that the monitor could not test there."""

    monitor: str
    group: Group
    window: int
    reason: str
    n_current: int
    n_reference: int


BASELINE_FORMING = "baseline not complete"
REFERENCE_SMALL = "reference too small"
CURRENT_SMALL = "current window too small"
NOT_TESTABLE = "too few categories left after pooling"


class _Reference(NamedTuple, Generic[T]):
    parts: list[T] | None
    """The reference buckets; None when the group cannot be tested in the window."""
    first: int
    """The reference's first window."""
    n: int
    """Observations in the reference (so far, while a baseline is forming)."""
    reason: str


class _References(Generic[T]):
    """The reference of each group in each window, for one monitor.

    ``baseline``: the group's :func:`baseline_windows` (computed once per group), usable
    for windows after its last one. ``trailing``: the windows just before. Either way
    the reference must hold ``min_n`` observations (as counted by ``size``).
    """

    def __init__(self, config: DriftConfig, min_n: int, size: Callable[[T], int]) -> None:
        self.config, self.min_n, self.size = config, min_n, size
        self._baselines: dict[Group, list[int] | None] = {}

    def find(self, group: Group, buckets: Mapping[int, T], window: int) -> _Reference[T]:
        if self.config.reference == "trailing":
            span = list(trailing_range(window, self.config))
        else:
            if group not in self._baselines:
                self._baselines[group] = baseline_windows(
                    {w: self.size(b) for w, b in buckets.items()}, self.min_n, self.config)
            baseline = self._baselines[group]
            if baseline is None or baseline[-1] >= window:
                before = sum(self.size(b) for w, b in buckets.items() if w < window)
                return _Reference(None, window, before, BASELINE_FORMING)
            span = baseline
        parts = [buckets[w] for w in span if w in buckets]
        n = sum(self.size(p) for p in parts)
        if n < self.min_n:
            return _Reference(None, span[0], n, REFERENCE_SMALL)
        return _Reference(parts, span[0], n, "")


def _skip(untested: list[Untested] | None, monitor: str, group: Group, window: int,
          reason: str, n_current: int, n_reference: int) -> None:
    if untested is not None and n_current > 0:
        untested.append(Untested(monitor, group, window, reason, n_current, n_reference))


def _span(config: DriftConfig, window: int, reference_first: int
          ) -> tuple[datetime, datetime, datetime]:
    return (window_start(window, config.width), window_start(window + 1, config.width),
            window_start(reference_first, config.width))


def detect_shift(monitor: str, observations: Iterable[Categorical], windows: Sequence[int],
                 config: DriftConfig, categories: Mapping[Group, Sequence[str]] | None = None,
                 *, untested: list[Untested] | None = None) -> list[Alert]:
    """Distribution-shift alerts: chi-square p-value below the per-test level and PSI at
    least ``config.min_psi``; windows below ``min_window_n`` / ``min_reference_n`` are
    never tested (each such group with data is appended to ``untested``)."""
    counts: dict[Group, dict[int, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for obs in observations:
        bucket = counts[obs.group][window_index(obs.at, config.width)]
        bucket[obs.value] = bucket.get(obs.value, 0) + 1
    references: _References[dict[str, int]] = _References(
        config, config.min_reference_n, lambda bucket: sum(bucket.values()))
    alerts: list[Alert] = []
    for window in windows:
        tests = []
        for group, buckets in counts.items():
            current = buckets.get(window, {})
            n_current = sum(current.values())
            found = references.find(group, buckets, window)
            if found.parts is None:
                _skip(untested, monitor, group, window, found.reason, n_current, found.n)
                continue
            if n_current < config.min_window_n:
                _skip(untested, monitor, group, window, CURRENT_SMALL, n_current, found.n)
                continue
            reference: dict[str, int] = {}
            for part in found.parts:
                for k, v in part.items():
                    reference[k] = reference.get(k, 0) + v
            cats = list((categories or {}).get(group) or [])
            cats += sorted((set(reference) | set(current)) - set(cats))
            ref_counts = [reference.get(c, 0) for c in cats]
            cur_counts = [current.get(c, 0) for c in cats]
            chi = chi_square_homogeneity(ref_counts, cur_counts, cats, config.min_expected)
            if chi.testable:
                psi = population_stability_index(ref_counts, cur_counts, config.smoothing)
                tests.append((group, reference, current, cats, found.first, chi.p_value,
                              psi))
            else:
                _skip(untested, monitor, group, window, NOT_TESTABLE, n_current, found.n)
        alpha = per_test_alpha(config.alpha_per_window, len(tests))
        for group, reference, current, cats, first, p_value, psi in tests:
            if p_value >= alpha or psi < config.min_psi:
                continue
            result = label_shift(reference, current, categories=cats,
                                 min_expected=config.min_expected, smoothing=config.smoothing)
            moved = moved_category(result.current_share_intervals,
                                   result.reference_share_intervals)
            assert moved is not None
            start, end, ref_start = _span(config, window, first)
            alerts.append(Alert(
                monitor=monitor, group=dict(group), window_start=start, window_end=end,
                reference_start=ref_start, test="chi_square", p_value=result.p_value,
                alpha=alpha, effect_name="psi", effect=result.psi, min_effect=config.min_psi,
                n_current=result.n_current, n_reference=result.n_reference,
                n_tests=len(tests),
                message=(f"{monitor} in {group_key(group)}: '{moved}' moved from "
                         f"{_share(result.reference_share_intervals[moved])} to "
                         f"{_share(result.current_share_intervals[moved])} (95% Wilson "
                         f"intervals; p={result.p_value:.2g}; PSI {result.psi:.3f}, "
                         f"JSD {result.jensen_shannon_bits:.3f} bits: descriptive, "
                         "biased upward)"),
                detail=result.as_dict()))
    return alerts


ContextFn = Callable[[Group, int], dict[str, Any]]


def _share(figure: Sequence[Any]) -> str:
    """``"19.4% [17.0%, 22.1%]"`` from ``(share, low, high)``."""
    if len(figure) < 3 or figure[0] is None:
        return "-"
    return f"{figure[0]:.1%} [{figure[1]:.1%}, {figure[2]:.1%}]"


def _change(change: float | None, interval: tuple[float, float] | None) -> str:
    """``"-33.3 points [-51.2, -16.7]"``: a difference of shares with its interval."""
    if change is None:
        return "-"
    text = f"{change * 100:+.1f} points"
    if interval is not None:
        text += f" [{interval[0] * 100:+.1f}, {interval[1] * 100:+.1f}]"
    return text


def detect_rate_change(monitor: str, observations: Iterable[Outcome], windows: Sequence[int],
                       config: DriftConfig, direction: Direction, *,
                       min_window_n: int | None = None, min_reference_n: int | None = None,
                       context: ContextFn | None = None,
                       untested: list[Untested] | None = None) -> list[Alert]:
    """Rate-change alerts: Fisher p-value below the per-test level and an absolute change
    of at least ``config.min_rate_change`` in the tested direction (groups with data that
    could not be tested are appended to ``untested``)."""
    min_cur = config.min_window_n if min_window_n is None else min_window_n
    min_ref = config.min_reference_n if min_reference_n is None else min_reference_n
    tallies: dict[Group, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for obs in observations:
        tally = tallies[obs.group][window_index(obs.at, config.width)]
        tally[0] += bool(obs.success)
        tally[1] += 1
    references: _References[list[int]] = _References(config, min_ref, lambda t: t[1])
    alerts: list[Alert] = []
    for window in windows:
        tests = []
        for group, buckets in tallies.items():
            cur_k, cur_n = buckets.get(window, [0, 0])
            found = references.find(group, buckets, window)
            if found.parts is None:
                _skip(untested, monitor, group, window, found.reason, cur_n, found.n)
                continue
            if cur_n < min_cur:
                _skip(untested, monitor, group, window, CURRENT_SMALL, cur_n, found.n)
                continue
            ref_k, ref_n = sum(t[0] for t in found.parts), sum(t[1] for t in found.parts)
            tests.append((group, ref_k, ref_n, cur_k, cur_n, found.first))
        if not tests:
            continue
        alpha = per_test_alpha(config.alpha_per_window, len(tests))
        table = np.array([t[1:5] for t in tests], dtype=np.int64)
        p_values = fisher_p_values(table[:, 0], table[:, 1], table[:, 2], table[:, 3],
                                   direction)
        change = table[:, 2] / table[:, 3] - table[:, 0] / table[:, 1]
        moved = {"increase": change, "decrease": -change, "two-sided": np.abs(change)}[direction]
        for idx in np.flatnonzero((p_values < alpha) & (moved >= config.min_rate_change)):
            group, ref_k, ref_n, cur_k, cur_n, first = tests[int(idx)]
            result = rate_change(ref_k, ref_n, cur_k, cur_n, direction)
            detail = result.as_dict()
            if context is not None:
                detail.update(context(group, window))
            start, end, ref_start = _span(config, window, first)
            alerts.append(Alert(
                monitor=monitor, group=dict(group), window_start=start, window_end=end,
                reference_start=ref_start, test="fisher_exact", p_value=result.p_value,
                alpha=alpha, effect_name="rate_change", effect=float(change[idx]),
                min_effect=config.min_rate_change, n_current=cur_n, n_reference=ref_n,
                n_tests=len(tests),
                message=(f"{monitor} in {group_key(group)}: "
                         f"{_share((result.reference_rate, *result.reference_ci))} -> "
                         f"{_share((result.current_rate, *result.current_ci))} "
                         f"(95% Wilson intervals; change {_change(result.change, result.change_ci)}"
                         f", p={result.p_value:.2g})"),
                detail=detail))
    return alerts


def detect_agreement_drop(monitor: str, ratings: Iterable[Rating], windows: Sequence[int],
                          config: DriftConfig, *, untested: list[Untested] | None = None
                          ) -> list[Alert]:
    """Agreement alerts: mean item agreement fell (Welch p below the per-test level) by
    at least ``config.min_rate_change``. An item belongs to the window of its first
    answer, so its answers are never split over two windows. Groups with rated items
    that could not be tested are appended to ``untested``."""
    first_seen: dict[tuple[Group, str], datetime] = {}
    answers: list[Rating] = list(ratings)
    for r in answers:
        key = (r.group, r.item)
        if key not in first_seen or r.at < first_seen[key]:
            first_seen[key] = r.at
    # One agreement computation per (group, window): items go to their first answer's
    # window, so an item's answers are never split.
    batches: dict[tuple[Group, int], tuple[list[str], list[str]]] = defaultdict(
        lambda: ([], []))
    for r in answers:
        items, labels = batches[(r.group, window_index(first_seen[(r.group, r.item)],
                                                        config.width))]
        items.append(r.item)
        labels.append(r.label)
    scores: dict[Group, dict[int, list[float]]] = defaultdict(dict)
    for (group, window), (items, labels) in batches.items():
        scores[group][window] = item_agreement(items, labels).tolist()
    references: _References[list[float]] = _References(
        config, config.min_agreement_items, len)
    alerts: list[Alert] = []
    for window in windows:
        tests = []
        for group, buckets in scores.items():
            current = np.asarray(buckets.get(window, []))
            found = references.find(group, buckets, window)
            if found.parts is None:
                _skip(untested, monitor, group, window, found.reason, current.size, found.n)
                continue
            if current.size < config.min_agreement_items:
                _skip(untested, monitor, group, window, CURRENT_SMALL, current.size,
                      found.n)
                continue
            reference = np.asarray([v for part in found.parts for v in part])
            tests.append((group, agreement_change(reference, current), found.first))
        alpha = per_test_alpha(config.alpha_per_window, len(tests))
        for group, result, first in tests:
            assert result.change is not None
            if result.p_value >= alpha or -result.change < config.min_rate_change:
                continue
            start, end, ref_start = _span(config, window, first)
            alerts.append(Alert(
                monitor=monitor, group=dict(group), window_start=start, window_end=end,
                reference_start=ref_start,
                test="welch_t" if result.test == "welch" else result.test,
                p_value=result.p_value,
                alpha=alpha, effect_name="agreement_change", effect=result.change,
                min_effect=config.min_rate_change, n_current=result.current_items,
                n_reference=result.reference_items, n_tests=len(tests),
                message=(f"{monitor} in {group_key(group)}: pairwise agreement "
                         f"{_share((result.reference_agreement, *(result.reference_ci or ())))}"
                         f" -> {_share((result.current_agreement, *(result.current_ci or ())))}"
                         f" (95% item-level intervals; change "
                         f"{_change(result.change, result.change_ci)}, "
                         f"p={result.p_value:.2g})"),
                detail=result.as_dict()))
    return alerts


def gold_cusum_context(outcomes: Iterable[Outcome], config: DriftConfig) -> ContextFn:
    """Context for gold-accuracy alerts: the reviewer's Bernoulli CUSUM
    (:func:`hilt.quality.trend.cusum_path`, defaults of
    :class:`hilt.quality.trend.CusumConfig`) at the end of the window over all of their
    gold answers so far, and whether it is above its decision limit."""
    from hilt.quality.trend import CusumConfig, cusum_path

    cusum = CusumConfig()
    series: dict[Group, list[tuple[datetime, bool]]] = defaultdict(list)
    for obs in outcomes:
        series[obs.group].append((obs.at, bool(obs.success)))
    for values in series.values():
        values.sort(key=lambda v: v[0])

    def context(group: Group, window: int) -> dict[str, Any]:
        end = window_start(window + 1, config.width)
        seen = [ok for at, ok in series.get(group, []) if at < end]
        if not seen:
            return {}
        value = float(cusum_path(seen, cusum)[-1])
        return {"cusum": value, "cusum_threshold": cusum.threshold,
                "cusum_alarm": value > cusum.threshold, "gold_answers_so_far": len(seen)}

    return context
