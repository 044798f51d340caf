"""Intervals of reviewer quality: exact Wilson bounds at 0/n and n/n, item-level
intervals for gold answers that come in groups, status reasons that quote their count
and interval, and the interval of a model's per-reviewer estimate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from hilt.quality import CalibrationConfig, ReviewRecord, replay_status, reviewer_report
from hilt.quality.calibration import (
    expected_count_interval,
    item_wilson_interval,
    wilson_interval,
)
from hilt.quality.files import aggregate_file


@pytest.mark.parametrize("n", [1, 3, 10, 13, 57, 400])
def test_wilson_bounds_are_exactly_0_and_1_at_no_and_all_successes(n: int) -> None:
    low, high = wilson_interval(0, n)
    assert float(low) == 0.0
    low, high = wilson_interval(n, n)
    assert float(high) == 1.0
    # Vectorised too, and at other levels.
    lows, highs = wilson_interval([0, n], [n, n], confidence=0.9)
    assert lows[0] == 0.0 and highs[1] == 1.0


def test_wilson_interval_holds_its_estimate_for_every_count() -> None:
    for n in range(1, 120):
        k = np.arange(n + 1)
        low, high = wilson_interval(k, np.full(k.shape, n))
        assert np.all(low <= k / n) and np.all(k / n <= high)
        expected = [proportion_confint(int(i), n, method="wilson") for i in (1, n - 1)]
        assert (low[1], high[1]) == pytest.approx(expected[0], abs=1e-12)
        assert (low[n - 1], high[n - 1]) == pytest.approx(expected[1], abs=1e-12)


def test_item_interval_counts_items_not_the_answers_inside_them() -> None:
    # 20 gold tasks of 3 questions each, one task misread entirely.
    right = [3] * 19 + [0]
    rate = item_wilson_interval(right, [3] * 20)
    assert rate.value == pytest.approx(57 / 60)
    assert rate.n_items == 20 and rate.n_effective == pytest.approx(20)
    assert (rate.ci_low, rate.ci_high) == pytest.approx(
        proportion_confint(19, 20, method="wilson"), abs=1e-12)
    per_answer = proportion_confint(57, 60, method="wilson")
    assert rate.ci_high - rate.ci_low > per_answer[1] - per_answer[0]
    # One answer per item is plain Wilson.
    single = item_wilson_interval([1] * 7 + [0] * 3, [1] * 10)
    assert (single.ci_low, single.ci_high) == pytest.approx(
        proportion_confint(7, 10, method="wilson"), abs=1e-12)


def test_item_interval_never_collapses_and_never_narrows_when_the_data_vary_more() -> None:
    perfect = item_wilson_interval([3] * 20, [3] * 20)
    assert perfect.value == 1.0 and perfect.ci_high == 1.0 and perfect.ci_low < 0.9
    one_error = item_wilson_interval([3] * 19 + [2], [3] * 20)
    assert one_error.ci_low < perfect.ci_low
    nothing = item_wilson_interval([], [])
    assert nothing.value is None and (nothing.ci_low, nothing.ci_high) == (0.0, 1.0)
    # Unequal items weigh by their trials: Kish's effective number of items.
    mixed = item_wilson_interval([10, 1, 1], [10, 1, 1])
    assert mixed.n_effective == pytest.approx(144 / 102)


def test_reviewer_report_interval_is_per_gold_item() -> None:
    records = []
    for task in range(20):
        for question in ("q1", "q2", "q3"):
            wrong = task == 0  # one misread gold item: three errors at once
            records.append(ReviewRecord("ann", f"t{task}:{question}", "x" if wrong else "y",
                                        True, "y", task, f"t{task}"))
    (row,) = reviewer_report(records)
    assert row.n_gold == 60 and row.gold_correct == 57 and row.n_gold_items == 20
    assert (row.ci_low, row.ci_high) == pytest.approx(
        proportion_confint(19, 20, method="wilson"), abs=1e-12)
    # The rolling window holds the last 50 gold items: all 20 here, with their 60
    # answers.
    assert row.rolling_n == 60 and row.rolling_n_items == 20
    assert row.rolling_ci_low <= row.rolling_accuracy <= row.rolling_ci_high  # type: ignore[operator]
    assert row.confidence == 0.95
    # Records without a unit are items of their own, as before.
    (plain,) = reviewer_report([r[:6] for r in records])
    assert plain.n_gold_items == 60
    assert (plain.ci_low, plain.ci_high) == pytest.approx(
        proportion_confint(57, 60, method="wilson"), abs=1e-12)


def test_status_reasons_quote_the_count_and_the_interval() -> None:
    trace = replay_status([True] * 10 + [True, False, True, True] * 10)
    passed, probation = (change.reason for change in trace.changes)
    assert passed == "passed calibration set (10/10, 95% CI 0.72–1.00)"
    low, high = proportion_confint(16, 22, method="wilson")
    assert probation == (f"rolling accuracy 0.73 below 0.75 over the last 22 gold items "
                         f"(16/22, 95% CI {low:.2f}–{high:.2f})")
    config = CalibrationConfig(confidence=0.9)
    failed = replay_status([False] * 20, config).changes[-1].reason
    assert failed.startswith("failed calibration 2 times (last 0/10, 90% CI 0.00–")


def test_status_reasons_count_items_when_answers_share_one() -> None:
    # Ten gold items of two answers each, one answer wrong: the calibration set is the
    # ten items, judged on the 19/20 right answers, with the interval of ten items
    # (Wilson's on 9.5 of 10, Kish's effective number of items being 10).
    outcomes = [True] * 20
    outcomes[5] = False
    trace = replay_status(outcomes, units=[i // 2 for i in range(20)])
    low, high = proportion_confint(9.5, 10, method="wilson")
    assert trace.changes[0].reason == (f"passed calibration set (19/20 from 10 items, "
                                       f"95% CI {low:.2f}–{high:.2f})")
    assert trace.changes[0].index == 19
    with pytest.raises(ValueError, match="units"):
        replay_status(outcomes, units=[1, 2])


def test_expected_count_interval_is_wilson_on_the_expected_count() -> None:
    value, low, high = expected_count_interval(3.5, 4)
    assert value == pytest.approx(0.875)
    assert (low, high) == pytest.approx(proportion_confint(3.5, 4, method="wilson"),
                                        abs=1e-12)
    assert expected_count_interval(0.0, 0) == (None, 0.0, 1.0)


@pytest.mark.parametrize(("method", "name"), [("ds", "estimated_accuracy"),
                                              ("one-coin", "estimated_accuracy"),
                                              ("mace", "estimated_competence")])
def test_aggregate_report_gives_each_reviewer_estimate_an_interval(
        tmp_path: Path, method: str, name: str) -> None:
    answers = tmp_path / "answers.csv"
    rows = ["item,reviewer,label"]
    for item in range(4):
        for reviewer in ("r1", "r2", "r3"):
            label = "b" if reviewer == "r3" and item == 0 else "a" if item % 2 else "b"
            rows.append(f"i{item},{reviewer},{label}")
    answers.write_text("\n".join(rows) + "\n")
    report = aggregate_file(answers, method, tmp_path / "labels.csv")
    for row in report["reviewers"]:
        _, low, high = expected_count_interval(row[name] * row["n_answers"], row["n_answers"])
        assert row["estimated_ci_low"] == pytest.approx(low, abs=1e-6)
        assert row["estimated_ci_high"] == pytest.approx(high, abs=1e-6)
        assert row["estimated_ci_low"] <= row[name] <= row["estimated_ci_high"]
        assert row["estimated_ci_high"] - row["estimated_ci_low"] > 0.3  # 4 answers
    json.dumps(report)
