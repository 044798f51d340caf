"""The per-reviewer quality report: gold accuracy, interval, status and trend.

Gold accuracy pools a reviewer's gold answers, but its interval counts gold *items*: the
answers to the questions of one gold task are correlated (one misread item makes
several errors at once), so the interval is :func:`hilt.quality.calibration.
item_wilson_interval` over the items (each record's ``unit``), and ``n_gold_items`` says
how many there were. Records without a ``unit`` are items of their own (plain Wilson).
The rolling window likewise holds the last ``config.window`` gold items, however many
answers each has.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

from hilt.quality.calibration import (
    CalibrationConfig,
    ItemRate,
    ReviewerStatus,
    item_wilson_interval,
    replay_status,
)


class ReviewRecord(NamedTuple):
    """One answer as the report needs it (plain tuples of the same shape work too)."""

    reviewer: Any
    item: Any
    label: Any
    is_gold: bool
    gold_label: Any
    timestamp: datetime | float | int
    unit: Any = None
    """The item a gold answer belongs to when several answers share one (e.g. the gold
    task of each gold question); ``None``: the answer is an item of its own."""
    question: Any = None
    """The question a gold answer answers (e.g. the gold question's id), so that the
    status machine's rounds judge each question on its own as well; ``None``: not
    known (the answer counts in the pooled share only)."""


@dataclass(frozen=True)
class ReviewerReportRow:
    """One reviewer's line in the quality report.

    ``gold_accuracy`` and its interval cover all of the reviewer's gold answers
    (``None`` accuracy and the interval (0, 1) without any); ``rolling_accuracy`` is the
    share of right answers of the last ``config.window`` gold items (``rolling_n_items``
    items, ``rolling_n`` answers), with its own interval.
    Both intervals are item-level Wilson intervals at ``confidence``
    (:func:`hilt.quality.calibration.item_wilson_interval`) over ``n_gold_items`` /
    ``rolling_n_items`` gold items. ``status`` comes from replaying the gold answers
    in time order (:func:`hilt.quality.calibration.replay_status`, whose onboarding and
    probation rounds and rolling window count gold items, the records' units, and whose
    rounds also judge each of the records' questions); ``trend_alarm`` says whether
    the CUSUM fired, at ``trend_alarm_at`` (the timestamp of that gold answer).
    """

    reviewer: Any
    n_answers: int
    n_gold: int
    gold_correct: int
    gold_accuracy: float | None
    ci_low: float
    ci_high: float
    rolling_accuracy: float | None
    rolling_n: int
    """Gold answers in the rolling window (the answers of its at most ``config.window``
    gold items)."""
    rolling_ci_low: float
    rolling_ci_high: float
    """Wilson interval of ``rolling_accuracy`` at ``config.confidence``: the window is
    small, so the rate alone overstates what is known."""
    status: str
    may_take_production_tasks: bool
    trend_alarm: bool
    trend_alarm_at: Any
    last_change_reason: str | None
    n_gold_items: int = 0
    """Gold items behind ``n_gold`` answers (the interval's independent units)."""
    rolling_n_items: int = 0
    """Gold items in the rolling window (at most ``config.window``), behind its
    ``rolling_n`` answers."""
    confidence: float = 0.95
    """Level of both intervals."""
    open_round: str | None = None
    """The calibration set or probation round still open, in words (e.g. ``calibration
    set not complete (2 of 10 gold items)``); None in the other statuses."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reviewer_report(records: Iterable[ReviewRecord | tuple[Any, ...]],
                    config: CalibrationConfig = CalibrationConfig(),
                    baselines: Mapping[Any, tuple[ReviewerStatus, Any]] | None = None
                    ) -> list[ReviewerReportRow]:
    """Per-reviewer report rows from ``(reviewer, item, label, is_gold, gold_label,
    timestamp[, unit[, question]])`` records, sorted by reviewer.

    A gold answer is correct when ``label`` and ``gold_label`` are the same label
    (:func:`same_label`: ``1``, ``1.0`` and ``"1"`` agree, the texts ``"1"`` and
    ``"1.0"`` do not). Answers are ordered by timestamp within each reviewer (ties
    keep their input order). A reviewer without gold answers stays in onboarding.

    ``baselines`` maps a reviewer to ``(status, since)``: the status machine starts from
    ``status`` and replays only the gold answers with timestamp ≥ ``since`` (``None``:
    all), e.g. after a person reinstated a suspended reviewer. Accuracy, interval and
    rolling accuracy always cover all gold answers.

    ``unit`` (optional seventh field) names the item a gold answer belongs to; answers
    with the same unit count as one item in the intervals (see the module), in the
    rolling window and in the status machine's rounds, which count items and are judged
    on the share of right answers. ``question`` (optional eighth field) names the
    question answered: a round also fails when one question is clearly below the bar
    (:func:`hilt.quality.calibration.replay_status`).
    """
    answers: dict[Any, int] = defaultdict(int)
    gold: dict[Any, list[tuple[Any, int, bool, Any, Any]]] = defaultdict(list)
    for position, record in enumerate(records):
        reviewer, _item, label, is_gold, gold_label, timestamp = tuple(record)[:6]
        unit = record[6] if len(record) > 6 else None
        question = record[7] if len(record) > 7 else None
        answers[reviewer] += 1
        if is_gold:
            gold[reviewer].append((timestamp, position, same_label(label, gold_label),
                                   ("unit", unit) if unit is not None else ("answer", position),
                                   question))
    rows = []
    for reviewer in sorted(answers, key=str):
        outcomes = sorted(gold.get(reviewer, []), key=lambda entry: (entry[0], entry[1]))
        correct = np.array([entry[2] for entry in outcomes], dtype=bool)
        n_gold, n_right = int(correct.size), int(correct.sum())
        overall = _item_rate(outcomes, config.confidence)
        rolling = _item_rate(_last_items(outcomes, config.window), config.confidence)
        start, since = (baselines or {}).get(reviewer, (ReviewerStatus.ONBOARDING, None))
        replayed = [entry for entry in outcomes if since is None or entry[0] >= since]
        trace = replay_status(np.array([entry[2] for entry in replayed], dtype=bool), config,
                              start=ReviewerStatus(start),
                              units=[entry[3] for entry in replayed],
                              questions=[entry[4] for entry in replayed])
        alarm = trace.trend_alarm_index
        status = ReviewerStatus(trace.status)
        rows.append(ReviewerReportRow(
            reviewer=reviewer, n_answers=answers[reviewer], n_gold=n_gold,
            gold_correct=n_right, gold_accuracy=n_right / n_gold if n_gold else None,
            ci_low=overall.ci_low, ci_high=overall.ci_high,
            rolling_accuracy=rolling.value, rolling_n=int(rolling.trials),
            rolling_ci_low=rolling.ci_low,
            rolling_ci_high=rolling.ci_high,
            status=status.value, may_take_production_tasks=status.may_take_production_tasks,
            trend_alarm=alarm is not None,
            trend_alarm_at=replayed[alarm][0] if alarm is not None else None,
            last_change_reason=trace.changes[-1].reason if trace.changes else None,
            n_gold_items=overall.n_items, rolling_n_items=rolling.n_items,
            confidence=config.confidence, open_round=trace.open_round))
    return rows


def same_label(label: Any, gold_label: Any) -> bool:
    """Whether an answer gives the gold label. Texts are compared as text; where either
    side is a number the other is matched by value, as gold labels are in the models:
    a gold column with gaps reads as floats (``1.0``) while the answers read as integers
    (``1``), and comparing their texts would mark every right answer wrong."""
    if str(label) == str(gold_label):
        return True
    if (not (_is_number(label) or _is_number(gold_label))
            or isinstance(label, bool | np.bool_) or isinstance(gold_label, bool | np.bool_)):
        return False
    try:
        return float(label) == float(gold_label)
    except (TypeError, ValueError):
        return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_)


def _last_items(outcomes: list[tuple[Any, int, bool, Any, Any]], count: int
                ) -> list[tuple[Any, int, bool, Any, Any]]:
    """The outcomes of the last ``count`` gold items: runs of consecutive outcomes of one
    unit, as the status machine's rolling window counts them."""
    start, runs = len(outcomes), 0
    while start > 0 and runs < count:
        unit = outcomes[start - 1][3]
        while start > 0 and outcomes[start - 1][3] == unit:
            start -= 1
        runs += 1
    return outcomes[start:]


def _item_rate(outcomes: list[tuple[Any, int, bool, Any, Any]], confidence: float
               ) -> ItemRate:
    """Gold accuracy of ``(timestamp, position, correct, unit, question)`` outcomes with
    its item-level interval."""
    by_unit: dict[Any, list[int]] = {}
    for _at, _position, right, unit, _question in outcomes:
        tally = by_unit.setdefault(unit, [0, 0])
        tally[0] += right
        tally[1] += 1
    counts = np.array(list(by_unit.values()) or [[0, 0]], dtype=np.float64)
    return item_wilson_interval(counts[:, 0], counts[:, 1], confidence)
