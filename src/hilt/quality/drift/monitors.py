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
(:func:`hilt.quality.drift.windows.reference_range`). A test takes part only when both
the current window and the reference are large enough; the window's false-alarm budget
is divided over the tests that take part (see :mod:`.windows`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import numpy as np

from hilt.quality.drift.alerts import Alert, group_key
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
    per_test_alpha,
    reference_range,
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


def _reference(buckets: Mapping[int, T], window: int, config: DriftConfig
               ) -> tuple[list[T], int] | None:
    """The reference buckets of a group and the index of its first window."""
    if not buckets:
        return None
    span = reference_range(min(buckets), window, config)
    if span is None:
        return None
    return [buckets[w] for w in span if w in buckets], span.start


def _span(config: DriftConfig, window: int, reference_first: int
          ) -> tuple[datetime, datetime, datetime]:
    return (window_start(window, config.width), window_start(window + 1, config.width),
            window_start(reference_first, config.width))


def detect_shift(monitor: str, observations: Iterable[Categorical], windows: Sequence[int],
                 config: DriftConfig, categories: Mapping[Group, Sequence[str]] | None = None
                 ) -> list[Alert]:
    """Distribution-shift alerts: chi-square p-value below the per-test level and PSI at
    least ``config.min_psi``; windows below ``min_window_n`` / ``min_reference_n`` are
    never tested."""
    counts: dict[Group, dict[int, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for obs in observations:
        bucket = counts[obs.group][window_index(obs.at, config.width)]
        bucket[obs.value] = bucket.get(obs.value, 0) + 1
    alerts: list[Alert] = []
    for window in windows:
        tests = []
        for group, buckets in counts.items():
            found = _reference(buckets, window, config)
            if found is None:
                continue
            parts, first = found
            current = buckets.get(window, {})
            reference: dict[str, int] = {}
            for part in parts:
                for k, v in part.items():
                    reference[k] = reference.get(k, 0) + v
            if (sum(current.values()) < config.min_window_n
                    or sum(reference.values()) < config.min_reference_n):
                continue
            cats = list((categories or {}).get(group) or [])
            cats += sorted((set(reference) | set(current)) - set(cats))
            ref_counts = [reference.get(c, 0) for c in cats]
            cur_counts = [current.get(c, 0) for c in cats]
            chi = chi_square_homogeneity(ref_counts, cur_counts, cats, config.min_expected)
            if chi.testable:
                psi = population_stability_index(ref_counts, cur_counts, config.smoothing)
                tests.append((group, reference, current, cats, first, chi.p_value, psi))
        alpha = per_test_alpha(config.alpha_per_window, len(tests))
        for group, reference, current, cats, first, p_value, psi in tests:
            if p_value >= alpha or psi < config.min_psi:
                continue
            result = label_shift(reference, current, categories=cats,
                                 min_expected=config.min_expected, smoothing=config.smoothing)
            moved = max(result.categories, key=lambda c: abs(
                result.current_share_intervals[c][0] - result.reference_share_intervals[c][0]))
            start, end, ref_start = _span(config, window, first)
            alerts.append(Alert(
                monitor=monitor, group=dict(group), window_start=start, window_end=end,
                reference_start=ref_start, test="chi_square", p_value=result.p_value,
                alpha=alpha, effect_name="psi", effect=result.psi, min_effect=config.min_psi,
                n_current=result.n_current, n_reference=result.n_reference,
                n_tests=len(tests),
                message=(f"{monitor} in {group_key(group)}: '{moved}' moved from "
                         f"{result.reference_share_intervals[moved][0]:.1%} to "
                         f"{result.current_share_intervals[moved][0]:.1%} "
                         f"(PSI {result.psi:.3f}, JSD {result.jensen_shannon_bits:.3f} bits, "
                         f"p={result.p_value:.2g})"),
                detail=result.as_dict()))
    return alerts


ContextFn = Callable[[Group, int], dict[str, Any]]


def detect_rate_change(monitor: str, observations: Iterable[Outcome], windows: Sequence[int],
                       config: DriftConfig, direction: Direction, *,
                       min_window_n: int | None = None, min_reference_n: int | None = None,
                       context: ContextFn | None = None) -> list[Alert]:
    """Rate-change alerts: Fisher p-value below the per-test level and an absolute change
    of at least ``config.min_rate_change`` in the tested direction."""
    min_cur = config.min_window_n if min_window_n is None else min_window_n
    min_ref = config.min_reference_n if min_reference_n is None else min_reference_n
    tallies: dict[Group, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for obs in observations:
        tally = tallies[obs.group][window_index(obs.at, config.width)]
        tally[0] += bool(obs.success)
        tally[1] += 1
    alerts: list[Alert] = []
    for window in windows:
        tests = []
        for group, buckets in tallies.items():
            found = _reference(buckets, window, config)
            if found is None:
                continue
            parts, first = found
            cur_k, cur_n = buckets.get(window, [0, 0])
            ref_k, ref_n = sum(t[0] for t in parts), sum(t[1] for t in parts)
            if cur_n >= min_cur and ref_n >= min_ref:
                tests.append((group, ref_k, ref_n, cur_k, cur_n, first))
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
                         f"{result.reference_rate:.1%} -> {result.current_rate:.1%} "
                         f"(95% CI {result.current_ci[0]:.1%}–{result.current_ci[1]:.1%}, "
                         f"p={result.p_value:.2g})"),
                detail=detail))
    return alerts


def detect_agreement_drop(monitor: str, ratings: Iterable[Rating], windows: Sequence[int],
                          config: DriftConfig) -> list[Alert]:
    """Agreement alerts: mean item agreement fell (Welch p below the per-test level) by
    at least ``config.min_rate_change``. An item belongs to the window of its first
    answer, so its answers are never split over two windows."""
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
    alerts: list[Alert] = []
    for window in windows:
        tests = []
        for group, buckets in scores.items():
            found = _reference(buckets, window, config)
            if found is None:
                continue
            parts, first = found
            current = np.asarray(buckets.get(window, []))
            reference = np.asarray([v for part in parts for v in part])
            if (current.size >= config.min_agreement_items
                    and reference.size >= config.min_agreement_items):
                tests.append((group, agreement_change(reference, current), first))
        alpha = per_test_alpha(config.alpha_per_window, len(tests))
        for group, result, first in tests:
            assert result.change is not None
            if result.p_value >= alpha or -result.change < config.min_rate_change:
                continue
            start, end, ref_start = _span(config, window, first)
            alerts.append(Alert(
                monitor=monitor, group=dict(group), window_start=start, window_end=end,
                reference_start=ref_start, test="welch_t", p_value=result.p_value,
                alpha=alpha, effect_name="agreement_change", effect=result.change,
                min_effect=config.min_rate_change, n_current=result.current_items,
                n_reference=result.reference_items, n_tests=len(tests),
                message=(f"{monitor} in {group_key(group)}: pairwise agreement "
                         f"{result.reference_agreement:.1%} -> "
                         f"{result.current_agreement:.1%} (p={result.p_value:.2g})"),
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
