"""Wilson intervals, the reviewer status machine, the CUSUM trend and the reviewer report."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from hilt.quality import (
    CalibrationConfig,
    CusumConfig,
    ReviewerStatus,
    ReviewRecord,
    cusum_path,
    first_alarm,
    replay_status,
    reviewer_report,
    rolling_accuracy,
    wilson_interval,
)


@pytest.mark.parametrize(("successes", "trials"), [(0, 10), (10, 10), (7, 10), (45, 120), (1, 1)])
def test_wilson_matches_statsmodels(successes: int, trials: int) -> None:
    low, high = wilson_interval(successes, trials)
    expected = proportion_confint(successes, trials, alpha=0.05, method="wilson")
    assert (float(low), float(high)) == pytest.approx(expected, abs=1e-12)


def test_wilson_vectorised_and_no_trials() -> None:
    low, high = wilson_interval([0, 3], [0, 4], confidence=0.9)
    assert (low[0], high[0]) == (0.0, 1.0)
    assert low[1] == pytest.approx(proportion_confint(3, 4, alpha=0.1, method="wilson")[0])
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_cusum_path_equals_the_recursion() -> None:
    rng = np.random.default_rng(0)
    outcomes = rng.random(300) < 0.8
    config = CusumConfig()
    expected, value = [], 0.0
    for right in outcomes:
        value = max(0.0, value + (config.correct_increment if right else config.error_increment))
        expected.append(value)
    assert cusum_path(outcomes, config) == pytest.approx(expected)


def _alarm_after_drop(seed: int, before: float, after: float, change_at: int,
                      length: int) -> int | None:
    rng = np.random.default_rng(seed)
    accuracy = np.where(np.arange(length) < change_at, before, after)
    return first_alarm(rng.random(length) < accuracy)


def test_cusum_flags_a_decaying_reviewer_within_documented_delay() -> None:
    # Documented in CusumConfig: a drop from 90% to 60% is flagged after a median of ~16
    # gold answers (95th percentile ~37).
    delays = []
    for seed in range(200):
        alarm = _alarm_after_drop(seed, 0.9, 0.6, change_at=200, length=400)
        assert alarm is not None
        if alarm >= 200:
            delays.append(alarm - 200 + 1)
    assert len(delays) >= 150  # most runs had no false alarm before the change
    assert np.median(delays) <= 20
    assert np.percentile(delays, 95) <= 45


def test_cusum_stays_quiet_for_a_stable_reviewer() -> None:
    false_alarms = sum(_alarm_after_drop(seed, 0.92, 0.92, 0, 300) is not None
                       for seed in range(200))
    # a reviewer at 92% over 300 gold answers: false alarms in at most 10% of runs
    assert false_alarms / 200 <= 0.1


def test_rolling_accuracy() -> None:
    values = rolling_accuracy([1, 0, 1, 1, 0, 0], window=3)
    assert values == pytest.approx([1, 0.5, 2 / 3, 2 / 3, 2 / 3, 1 / 3])


class TestStatusMachine:
    config = CalibrationConfig(calibration_set_size=10, calibration_pass_accuracy=0.8,
                               max_calibration_attempts=2, window=20, min_window_answers=10,
                               probation_accuracy=0.75, probation_length=10,
                               recovery_accuracy=0.8)

    def test_passes_onboarding(self) -> None:
        trace = replay_status([True] * 8 + [False] * 2, self.config)
        assert trace.status is ReviewerStatus.CALIBRATED
        assert trace.changes[0].index == 9
        assert ReviewerStatus.CALIBRATED.may_take_production_tasks

    def test_incomplete_calibration_set_stays_onboarding(self) -> None:
        trace = replay_status([True] * 9, self.config)
        assert trace.status is ReviewerStatus.ONBOARDING
        assert not trace.status.may_take_production_tasks

    def test_fails_onboarding_twice_is_suspended(self) -> None:
        trace = replay_status([False] * 10 + [True] * 5 + [False] * 5, self.config)
        assert trace.status is ReviewerStatus.SUSPENDED
        assert not ReviewerStatus.SUSPENDED.may_take_production_tasks

    def test_second_attempt_can_pass(self) -> None:
        trace = replay_status([False] * 10 + [True] * 10, self.config)
        assert trace.status is ReviewerStatus.CALIBRATED

    def test_decline_leads_to_probation_then_suspension(self) -> None:
        outcomes = [True] * 10 + [True] * 30 + [False, True] * 15 + [False] * 10
        trace = replay_status(outcomes, self.config)
        statuses = [change.new for change in trace.changes]
        assert statuses == [ReviewerStatus.CALIBRATED, ReviewerStatus.PROBATION,
                            ReviewerStatus.SUSPENDED]

    def test_recovery_from_probation(self) -> None:
        outcomes = [True] * 10 + [False] * 6 + [True] * 10 + [True] * 5
        trace = replay_status(outcomes, self.config)
        assert [c.new for c in trace.changes] == [ReviewerStatus.CALIBRATED,
                                                  ReviewerStatus.PROBATION,
                                                  ReviewerStatus.CALIBRATED]
        assert trace.status is ReviewerStatus.CALIBRATED
        assert trace.trend_alarm_index is not None

    def test_config_validation(self) -> None:
        with pytest.raises(ValueError):
            CalibrationConfig(calibration_set_size=0)
        with pytest.raises(ValueError):
            CalibrationConfig(probation_accuracy=1.5)
        with pytest.raises(ValueError):
            CusumConfig(target_accuracy=0.6, alarm_accuracy=0.7)


def test_reviewer_report_rows() -> None:
    rng = np.random.default_rng(3)
    records: list[ReviewRecord | tuple[object, ...]] = []
    for t in range(300):
        # "steady" stays at 95%; "fading" drops from 95% to 55% at t = 150
        for name, accuracy in (("steady", 0.95), ("fading", 0.95 if t < 150 else 0.55)):
            right = rng.random() < accuracy
            records.append(ReviewRecord(name, f"g{t}", "a" if right else "b", True, "a", t))
            records.append((name, f"p{t}", "x", False, None, t + 0.5))
    records.append(("newcomer", "p0", "x", False, None, 0))
    rows = {row.reviewer: row for row in reviewer_report(records)}
    assert [row for row in rows] == ["fading", "newcomer", "steady"]
    steady, fading, newcomer = rows["steady"], rows["fading"], rows["newcomer"]
    assert steady.status == "calibrated" and not steady.trend_alarm
    assert steady.n_gold == 300 and steady.n_answers == 600
    assert steady.ci_low < steady.gold_accuracy < steady.ci_high  # type: ignore[operator]
    assert fading.trend_alarm and fading.trend_alarm_at >= 150
    assert fading.status in ("probation", "suspended")
    assert newcomer.status == "onboarding" and newcomer.gold_accuracy is None
    assert (newcomer.ci_low, newcomer.ci_high) == (0.0, 1.0)
    # The rolling accuracy carries a Wilson interval over the last `window` answers.
    window = CalibrationConfig().window
    assert fading.rolling_n == window and newcomer.rolling_n == 0
    right = round(fading.rolling_accuracy * window)  # type: ignore[operator]
    low, high = wilson_interval(right, window)
    assert (fading.rolling_ci_low, fading.rolling_ci_high) == pytest.approx(
        (float(low), float(high)))
    assert fading.rolling_ci_low < fading.rolling_accuracy < fading.rolling_ci_high  # type: ignore[operator]
    assert (newcomer.rolling_ci_low, newcomer.rolling_ci_high) == (0.0, 1.0)
    assert rows["steady"].as_dict()["reviewer"] == "steady"
