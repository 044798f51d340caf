"""The rolling window of production gold counts gold items, as the rounds do: with five
questions per gold task, ``window`` and ``min_window_items`` are tasks, not answers, and
the rolling accuracy is the pooled share over them with the item-level interval."""

from __future__ import annotations

import pytest
from statsmodels.stats.proportion import proportion_confint

from hilt.errors import InputError
from hilt.quality import (
    CalibrationConfig,
    CusumConfig,
    ReviewerStatus,
    ReviewRecord,
    replay_status,
    reviewer_report,
)
from hilt.quality._settings import SettingError
from hilt.quality.store import settings_from_dict

QUESTIONS = 5
NO_CUSUM = CusumConfig(threshold=1000.0)


def _items(rights: list[int]) -> tuple[list[bool], list[int]]:
    """One five-answer gold item per entry, with that many right answers first."""
    outcomes, units = [], []
    for item, right in enumerate(rights):
        outcomes += [answer < right for answer in range(QUESTIONS)]
        units += [item] * QUESTIONS
    return outcomes, units


def _wilson_text(right: float, n: float) -> str:
    low, high = proportion_confint(right, n, method="wilson")
    return f"95% CI {low:.2f}–{high:.2f}"


def test_the_window_acts_only_once_it_holds_min_window_items_items() -> None:
    # Three right answers of five on every item (0.6 < 0.75): 20 answers are in after
    # four items, but the window waits for 20 items (100 answers).
    config = CalibrationConfig(cusum=NO_CUSUM)
    outcomes, units = _items([3] * 25)
    trace = replay_status(outcomes, config, start=ReviewerStatus.CALIBRATED, units=units)
    (change,) = trace.changes
    assert change.new is ReviewerStatus.PROBATION
    assert change.index == 20 * QUESTIONS - 1
    assert change.reason == (f"rolling accuracy 0.60 below 0.75 over the last 20 gold items "
                             f"(60/100 from 20 items, {_wilson_text(12, 20)})")
    early = replay_status(outcomes[:19 * QUESTIONS], config,
                          start=ReviewerStatus.CALIBRATED, units=units[:19 * QUESTIONS])
    assert early.status is ReviewerStatus.CALIBRATED and early.changes == []


def test_the_window_holds_the_last_window_items() -> None:
    # Ten right items, then items of two right answers in five. A window of ten
    # answers (two items) would fall to 7/10 with the first bad item; ten items
    # reach (50 - 3k) / 50 < 0.75 only at the fifth bad one.
    config = CalibrationConfig(window=10, min_window_items=10, cusum=NO_CUSUM)
    outcomes, units = _items([5] * 10 + [2] * 8)
    trace = replay_status(outcomes, config, start=ReviewerStatus.CALIBRATED, units=units)
    (change,) = trace.changes
    assert change.index == 15 * QUESTIONS - 1
    assert change.reason == (f"rolling accuracy 0.70 below 0.75 over the last 10 gold items "
                             f"(35/50 from 10 items, {_wilson_text(7, 10)})")


def test_the_window_judges_at_the_end_of_an_item() -> None:
    # The first answers of an item are wrong, the rest right: judged on the whole item.
    config = CalibrationConfig(window=1, min_window_items=1, cusum=NO_CUSUM)
    outcomes = [False, False, True, True, True, True, True, True]
    trace = replay_status(outcomes, config, start=ReviewerStatus.CALIBRATED,
                          units=[0] * 8)
    assert trace.status is ReviewerStatus.CALIBRATED and trace.changes == []


def test_reviewer_report_rolling_window_counts_items() -> None:
    records = [ReviewRecord("ann", f"t{item}:q{question}", "y", True, "y",
                            item * QUESTIONS + question, f"t{item}", f"q{question}")
               for item in range(60) for question in range(QUESTIONS)]
    (row,) = reviewer_report(records)
    assert row.rolling_n_items == 50 and row.rolling_n == 50 * QUESTIONS
    assert row.rolling_accuracy == 1.0
    (small,) = reviewer_report(records, CalibrationConfig(window=3))
    assert small.rolling_n_items == 3 and small.rolling_n == 3 * QUESTIONS


def test_min_window_answers_is_still_read_with_the_same_meaning() -> None:
    # Settings written before the rename still load; the old name counts gold items too.
    assert CalibrationConfig(min_window_answers=5) == CalibrationConfig(min_window_items=5)
    assert CalibrationConfig(min_window_answers=5).min_window_items == 5
    _aggregation, calibration = settings_from_dict({"calibration": {"min_window_answers": 7}})
    assert calibration.min_window_items == 7
    _aggregation, calibration = settings_from_dict({"calibration": {"min_window_items": 8}})
    assert calibration.min_window_items == 8
    with pytest.raises(SettingError) as caught:
        CalibrationConfig(min_window_answers=5, min_window_items=8)
    assert caught.value.field == "min_window_answers"
    with pytest.raises(InputError, match="min_window_items"):
        settings_from_dict({"calibration": {"min_window_items": 0}}, file="q.yaml")


@pytest.mark.parametrize("items", [20, 8])
def test_a_settings_file_giving_both_names_with_different_values_is_refused(
        items: int) -> None:
    # 20 is also the default, which the config alone cannot tell from a written 20: the
    # former name used to win over it without a word.
    lines = {("calibration", "min_window_answers"): 2, ("calibration", "min_window_items"): 3}
    with pytest.raises(InputError) as caught:
        settings_from_dict({"calibration": {"min_window_answers": 5,
                                            "min_window_items": items}},
                           file="q.yaml", line_of=lines.get)
    assert (caught.value.file, caught.value.line, caught.value.field) == (
        "q.yaml", 2, "calibration.min_window_answers")
    _aggregation, calibration = settings_from_dict(
        {"calibration": {"min_window_answers": 5, "min_window_items": 5}})
    assert calibration.min_window_items == 5
