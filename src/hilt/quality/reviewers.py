"""The per-reviewer quality report: gold accuracy, interval, status and trend."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

from hilt.quality.calibration import (
    CalibrationConfig,
    ReviewerStatus,
    replay_status,
    wilson_interval,
)
from hilt.quality.trend import rolling_accuracy


class ReviewRecord(NamedTuple):
    """One answer as the report needs it (plain tuples of the same shape work too)."""

    reviewer: Any
    item: Any
    label: Any
    is_gold: bool
    gold_label: Any
    timestamp: datetime | float | int


@dataclass(frozen=True)
class ReviewerReportRow:
    """One reviewer's line in the quality report.

    ``gold_accuracy`` and the Wilson interval cover all of the reviewer's gold answers
    (``None`` accuracy and the interval (0, 1) without any); ``rolling_accuracy`` covers
    the last ``config.window`` of them (``rolling_n`` answers), with its own Wilson
    interval. ``status`` comes from replaying the gold answers
    in time order (:func:`hilt.quality.calibration.replay_status`); ``trend_alarm`` says
    whether the CUSUM fired, at ``trend_alarm_at`` (the timestamp of that gold answer).
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
    """Gold answers in the rolling window (at most ``config.window``)."""
    rolling_ci_low: float
    rolling_ci_high: float
    """Wilson interval of ``rolling_accuracy`` at ``config.confidence``: the window is
    small, so the rate alone overstates what is known."""
    status: str
    may_take_production_tasks: bool
    trend_alarm: bool
    trend_alarm_at: Any
    last_change_reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reviewer_report(records: Iterable[ReviewRecord | tuple[Any, ...]],
                    config: CalibrationConfig = CalibrationConfig(),
                    baselines: Mapping[Any, tuple[ReviewerStatus, Any]] | None = None
                    ) -> list[ReviewerReportRow]:
    """Per-reviewer report rows from ``(reviewer, item, label, is_gold, gold_label,
    timestamp)`` records, sorted by reviewer.

    A gold answer is correct when ``label == gold_label`` (compared as strings, so
    ``1`` and ``"1"`` agree). Answers are ordered by timestamp within each reviewer (ties
    keep their input order). A reviewer without gold answers stays in onboarding.

    ``baselines`` maps a reviewer to ``(status, since)``: the status machine starts from
    ``status`` and replays only the gold answers with timestamp ≥ ``since`` (``None``:
    all), e.g. after a person reinstated a suspended reviewer. Accuracy, interval and
    rolling accuracy always cover all gold answers.
    """
    answers: dict[Any, int] = defaultdict(int)
    gold: dict[Any, list[tuple[Any, int, bool]]] = defaultdict(list)
    for position, record in enumerate(records):
        reviewer, _item, label, is_gold, gold_label, timestamp = record
        answers[reviewer] += 1
        if is_gold:
            gold[reviewer].append((timestamp, position, str(label) == str(gold_label)))
    rows = []
    for reviewer in sorted(answers, key=str):
        outcomes = sorted(gold.get(reviewer, []), key=lambda entry: (entry[0], entry[1]))
        correct = np.array([entry[2] for entry in outcomes], dtype=bool)
        n_gold, n_right = int(correct.size), int(correct.sum())
        low, high = wilson_interval(n_right, n_gold, config.confidence)
        recent = correct[-config.window:]
        rolling_low, rolling_high = wilson_interval(int(recent.sum()), int(recent.size),
                                                    config.confidence)
        start, since = (baselines or {}).get(reviewer, (ReviewerStatus.ONBOARDING, None))
        replayed = [entry for entry in outcomes if since is None or entry[0] >= since]
        trace = replay_status(np.array([entry[2] for entry in replayed], dtype=bool), config,
                              start=ReviewerStatus(start))
        alarm = trace.trend_alarm_index
        status = ReviewerStatus(trace.status)
        rows.append(ReviewerReportRow(
            reviewer=reviewer, n_answers=answers[reviewer], n_gold=n_gold,
            gold_correct=n_right, gold_accuracy=n_right / n_gold if n_gold else None,
            ci_low=float(low), ci_high=float(high),
            rolling_accuracy=(float(rolling_accuracy(correct, config.window)[-1])
                              if n_gold else None),
            rolling_n=int(recent.size), rolling_ci_low=float(rolling_low),
            rolling_ci_high=float(rolling_high),
            status=status.value, may_take_production_tasks=status.may_take_production_tasks,
            trend_alarm=alarm is not None,
            trend_alarm_at=replayed[alarm][0] if alarm is not None else None,
            last_change_reason=trace.changes[-1].reason if trace.changes else None))
    return rows
