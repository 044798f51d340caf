"""A calibration or probation round also judges each question on its own: a reviewer who
is plainly wrong on one question fails the round even when the pooled share of right
answers reaches the bar, while one who is merely unlucky on a question over a round's
few items still passes."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from hilt.quality import (
    CalibrationConfig,
    ReviewerStatus,
    ReviewRecord,
    replay_status,
    reviewer_report,
)

QUESTIONS = ("verdict", "q2", "q3", "q4", "q5")
ONE_ROUND = CalibrationConfig(max_calibration_attempts=1)


def _round(n_items: int, wrong: dict[str, int]) -> tuple[list[bool], list[int], list[str]]:
    """``n_items`` gold items of the five questions; question ``q`` is wrong on the
    first ``wrong[q]`` items."""
    outcomes, units, questions = [], [], []
    for item in range(n_items):
        for question in QUESTIONS:
            outcomes.append(item >= wrong.get(question, 0))
            units.append(item)
            questions.append(question)
    return outcomes, units, questions


def _wilson_text(right: float, n: float) -> str:
    low, high = proportion_confint(right, n, method="wilson")
    return f"95% CI {low:.2f}–{high:.2f}"


def test_a_question_wrong_on_every_item_fails_the_round() -> None:
    # 40/50 = 0.8 pooled, but the verdict is 0/10 (95% CI 0.00–0.28).
    outcomes, units, questions = _round(10, {"verdict": 10})
    trace = replay_status(outcomes, ONE_ROUND, units=units, questions=questions)
    assert trace.status is ReviewerStatus.SUSPENDED
    (change,) = trace.changes
    assert change.index == 49
    assert change.reason == (
        f"failed calibration 1 times (last 40/50 from 10 items, {_wilson_text(8, 10)}; "
        f"question 'verdict': 0/10, {_wilson_text(0, 10)}, below 0.8)")
    # Without the questions the round is judged on the pooled share alone.
    pooled = replay_status(outcomes, ONE_ROUND, units=units)
    assert pooled.status is ReviewerStatus.CALIBRATED


def test_each_question_clearly_below_the_bar_is_named() -> None:
    outcomes, units, questions = _round(10, {"verdict": 10, "q3": 6})
    (change,) = replay_status(outcomes, ONE_ROUND, units=units, questions=questions).changes
    assert change.reason == (
        f"failed calibration 1 times (last 34/50 from 10 items, {_wilson_text(6.8, 10)}; "
        f"question 'verdict': 0/10, {_wilson_text(0, 10)}, below 0.8; "
        f"question 'q3': 4/10, {_wilson_text(4, 10)}, below 0.8)")


@pytest.mark.parametrize(("wrong", "passes"), [
    (4, True),   # 6/10, 95% CI 0.31–0.83: may be bad luck over ten items
    (5, False),  # 5/10, 95% CI 0.24–0.76: wholly below 0.8
])
def test_a_question_fails_only_when_its_interval_lies_below_the_bar(
        wrong: int, passes: bool) -> None:
    outcomes, units, questions = _round(10, {"verdict": wrong})
    trace = replay_status(outcomes, ONE_ROUND, units=units, questions=questions)
    # The pooled share, 46/50 or 45/50, is above the bar either way.
    assert (trace.status is ReviewerStatus.CALIBRATED) is passes


def test_probation_judges_each_question_against_the_recovery_bar() -> None:
    config = CalibrationConfig(probation_length=20, recovery_accuracy=0.85)
    # Verdict 13/20 (CI 0.43–0.82) is below 0.85 although the pooled 93/100 is not.
    outcomes, units, questions = _round(20, {"verdict": 7})
    trace = replay_status(outcomes, config, start=ReviewerStatus.PROBATION, units=units,
                          questions=questions)
    (change,) = trace.changes
    assert change.new is ReviewerStatus.SUSPENDED
    assert change.reason == (
        f"did not recover on probation (93/100 from 20 items, {_wilson_text(18.6, 20)}; "
        f"question 'verdict': 13/20, {_wilson_text(13, 20)}, below 0.85)")
    # 14/20 (CI 0.48–0.85) is not clearly below: the reviewer recovers.
    outcomes, units, questions = _round(20, {"verdict": 6})
    trace = replay_status(outcomes, config, start=ReviewerStatus.PROBATION, units=units,
                          questions=questions)
    assert [c.new for c in trace.changes] == [ReviewerStatus.CALIBRATED]


def _simulated(seed: int, accuracy: list[float], *, by_question: bool = True,
               n_items: int = 20) -> ReviewerStatus:
    """A reviewer right on question ``q`` with probability ``accuracy[q]``, given
    ``n_items`` gold items (two calibration sets)."""
    rng = np.random.default_rng(seed)
    right = rng.random((n_items, len(accuracy))) < np.array(accuracy)
    units = [item for item in range(n_items) for _ in accuracy]
    questions = [question for _ in range(n_items) for question in range(len(accuracy))]
    return replay_status(right.ravel(), units=units,
                         questions=questions if by_question else None).status


def test_simulated_reviewers_good_ones_pass_and_one_wrong_question_fails() -> None:
    seeds = range(300)
    good = [_simulated(seed, [0.9] * 5) for seed in seeds]
    # A single round fails a 90 % reviewer about 2.5 % of the time (pooled share below
    # 0.8 or a question at 5/10 or worse); with two rounds about 1 % end suspended.
    assert sum(status is ReviewerStatus.CALIBRATED for status in good) >= 0.97 * len(good)
    # The question rule costs good reviewers almost nothing over the pooled share.
    pooled = [_simulated(seed, [0.9] * 5, by_question=False) for seed in seeds]
    assert (sum(status is ReviewerStatus.CALIBRATED for status in pooled)
            - sum(status is ReviewerStatus.CALIBRATED for status in good)) <= 3
    for others in (0.95, 1.0):
        wrong_verdict = [_simulated(seed, [0.0] + [others] * 4) for seed in seeds]
        assert all(status is ReviewerStatus.SUSPENDED for status in wrong_verdict)
    # Judged on the pooled share alone (40/50 on every round), the same reviewer passes.
    assert all(_simulated(seed, [0.0] + [1.0] * 4, by_question=False)
               is ReviewerStatus.CALIBRATED for seed in range(5))


def test_reviewer_report_passes_the_question_of_each_record() -> None:
    records = [ReviewRecord("ann", f"t{item}:{question}",
                            "safe" if question == "verdict" else "x", True,
                            "harmful" if question == "verdict" else "x", item * 10 + n,
                            f"t{item}", question)
               for item in range(10) for n, question in enumerate(QUESTIONS)]
    (row,) = reviewer_report(records, ONE_ROUND)
    assert row.status == "suspended"
    assert row.last_change_reason is not None
    assert "question 'verdict': 0/10" in row.last_change_reason
    # Records without the question (seven fields) are judged on the pooled share.
    (pooled,) = reviewer_report([tuple(r)[:7] for r in records], ONE_ROUND)
    assert pooled.status == "calibrated"


def test_questions_must_name_one_question_per_outcome() -> None:
    with pytest.raises(ValueError, match="questions"):
        replay_status([True, True], units=[0, 0], questions=["verdict"])
