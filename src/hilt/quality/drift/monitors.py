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
is tested separately in each window against the pooled ``reference_windows`` before it.
A test takes part only when both windows are large enough; the window's false-alarm
budget is divided over the tests that take part (see :mod:`.windows`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

from hilt.quality.drift.alerts import Alert, group_key
from hilt.quality.drift.rates import Direction, agreement_change, item_agreement, rate_change
from hilt.quality.drift.shift import label_shift
from hilt.quality.drift.windows import DriftConfig, per_test_alpha, window_index, window_start

Group = tuple[tuple[str, str], ...]


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


def _span(config: DriftConfig, window: int) -> tuple[datetime, datetime, datetime]:
    return (window_start(window, config.width), window_start(window + 1, config.width),
            window_start(window - config.reference_windows, config.width))


def _reference(buckets: Mapping[int, Any], window: int, config: DriftConfig) -> list[Any]:
    return [buckets[w] for w in range(window - config.reference_windows, window)
            if w in buckets]


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
            current = buckets.get(window, {})
            reference: dict[str, int] = {}
            for part in _reference(buckets, window, config):
                for k, v in part.items():
                    reference[k] = reference.get(k, 0) + v
            if (sum(current.values()) < config.min_window_n
                    or sum(reference.values()) < config.min_reference_n):
                continue
            result = label_shift(reference, current,
                                 categories=(categories or {}).get(group),
                                 min_expected=config.min_expected, smoothing=config.smoothing)
            if result.testable:
                tests.append((group, result))
        alpha = per_test_alpha(config.alpha_per_window, len(tests))
        start, end, ref_start = _span(config, window)
        for group, result in tests:
            if result.p_value < alpha and result.psi >= config.min_psi:
                moved = max(result.categories, key=lambda c: abs(
                    result.current_share_intervals[c][0]
                    - result.reference_share_intervals[c][0]))
                alerts.append(Alert(
                    monitor=monitor, group=dict(group), window_start=start, window_end=end,
                    reference_start=ref_start, test="chi_square", p_value=result.p_value,
                    alpha=alpha, effect_name="psi", effect=result.psi,
                    min_effect=config.min_psi, n_current=result.n_current,
                    n_reference=result.n_reference, n_tests=len(tests),
                    message=(f"{monitor} in {group_key(group)}: '{moved}' moved from "
                             f"{result.reference_share_intervals[moved][0]:.1%} to "
                             f"{result.current_share_intervals[moved][0]:.1%} "
                             f"(PSI {result.psi:.3f}, JSD {result.jensen_shannon_bits:.3f} "
                             f"bits, p={result.p_value:.2g})"),
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
            cur_k, cur_n = buckets.get(window, [0, 0])
            ref = _reference(buckets, window, config)
            ref_k, ref_n = sum(t[0] for t in ref), sum(t[1] for t in ref)
            if cur_n < min_cur or ref_n < min_ref:
                continue
            tests.append((group, rate_change(ref_k, ref_n, cur_k, cur_n, direction)))
        alpha = per_test_alpha(config.alpha_per_window, len(tests))
        start, end, ref_start = _span(config, window)
        for group, result in tests:
            assert result.change is not None
            moved = {"increase": result.change, "decrease": -result.change,
                     "two-sided": abs(result.change)}[direction]
            if result.p_value < alpha and moved >= config.min_rate_change:
                detail = result.as_dict()
                if context is not None:
                    detail.update(context(group, window))
                alerts.append(Alert(
                    monitor=monitor, group=dict(group), window_start=start, window_end=end,
                    reference_start=ref_start, test="fisher_exact", p_value=result.p_value,
                    alpha=alpha, effect_name="rate_change", effect=result.change,
                    min_effect=config.min_rate_change, n_current=result.current_trials,
                    n_reference=result.reference_trials, n_tests=len(tests),
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
    by_item: dict[tuple[Group, str], list[Rating]] = defaultdict(list)
    for r in ratings:
        by_item[(r.group, r.item)].append(r)
    scores: dict[Group, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (group, _item), answers in by_item.items():
        if len(answers) < 2:
            continue
        window = window_index(min(a.at for a in answers), config.width)
        value = item_agreement([a.item for a in answers], [a.label for a in answers])
        scores[group][window].extend(value.tolist())
    alerts: list[Alert] = []
    for window in windows:
        tests = []
        for group, buckets in scores.items():
            current = np.asarray(buckets.get(window, []))
            reference = np.asarray([v for part in _reference(buckets, window, config)
                                    for v in part])
            if (current.size < config.min_agreement_items
                    or reference.size < config.min_agreement_items):
                continue
            tests.append((group, agreement_change(reference, current)))
        alpha = per_test_alpha(config.alpha_per_window, len(tests))
        start, end, ref_start = _span(config, window)
        for group, result in tests:
            assert result.change is not None
            if result.p_value < alpha and -result.change >= config.min_rate_change:
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
    (:func:`hilt.quality.trend.cusum_path`) at the end of the window, over all of their
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
