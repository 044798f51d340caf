"""Intervals in drift results: agreement means that keep their width when items do not
vary, no certain p-value from a handful of items, alert texts and listings that carry
the intervals, an undefined bridge share left undefined, and the false-alarm rate of the
validation with its count and interval."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint
from typer.testing import CliRunner

from hilt.cli import app
from hilt.quality.drift.alerts import DIVERGENCE_NOTE, Alert, alert_intervals
from hilt.quality.drift.monitors import (
    Categorical,
    Outcome,
    detect_agreement_drop,
    detect_rate_change,
    detect_shift,
)
from hilt.quality.drift.rates import agreement_change, difference_interval, rate_change
from hilt.quality.drift.synthetic import DAY, FIRST_WINDOW, rating_stream
from hilt.quality.drift.transition import transition_matrix
from hilt.quality.drift.validation import measure
from hilt.quality.drift.windows import DriftConfig, window_start
from hilt.store.db import transaction

WINDOWS = range(FIRST_WINDOW, FIRST_WINDOW + 6)


def test_agreement_of_two_items_each_is_not_a_certain_fall() -> None:
    result = agreement_change([1.0, 1.0], [0.0, 0.0])
    # Permutation test: 1 of the C(4, 2) = 6 splits is as extreme.
    assert result.p_value == pytest.approx(1 / 6)
    assert result.test == "permutation"
    assert result.reference_ci is not None and result.reference_ci[0] < 0.5
    assert result.current_ci is not None and result.current_ci[1] > 0.5
    assert result.change_ci is not None and result.change_ci[0] == -1.0


def test_agreement_interval_keeps_its_width_when_every_item_agrees() -> None:
    result = agreement_change([1.0] * 40, [1.0] * 20 + [0.0] * 10)
    assert result.reference_ci == pytest.approx(proportion_confint(40, 40, method="wilson"),
                                                abs=1e-12)
    assert result.reference_ci is not None and result.reference_ci[0] < 0.95
    assert result.current_ci == pytest.approx(proportion_confint(20, 30, method="wilson"),
                                              abs=1e-12)
    assert 0 < result.p_value < 0.001
    same = agreement_change([1.0] * 40, [1.0] * 30)
    assert same.p_value == 1.0 and same.change_ci is not None and same.change_ci[0] < 0
    # Items that vary on both sides keep Welch's test.
    assert agreement_change([1.0, 0.5, 1.0, 0.0], [0.5, 0.0, 0.5]).test == "welch"


def test_agreement_alert_reports_item_level_intervals() -> None:
    ratings = rating_stream(n_windows=6, onset=4, accuracy=1.0, seed=3)
    alerts = detect_agreement_drop("agreement", ratings, WINDOWS, DriftConfig())
    assert alerts
    alert = alerts[0]
    low, high = alert.detail["reference_ci"]
    assert alert.detail["reference_agreement"] == 1.0 and low < 0.99 and high == 1.0
    assert alert.test == "permutation"
    assert "[" in alert.message and "item-level intervals" in alert.message
    summary = alert.as_dict()["intervals"]
    assert summary["reference"]["ci_low"] == low
    assert summary["change"]["ci_high"] < 0 < summary["reference"]["value"]


def test_shift_alert_message_and_listing_carry_the_share_intervals() -> None:
    config = DriftConfig()
    observations = []
    for offset in range(6):
        start = window_start(FIRST_WINDOW + offset, DAY)
        harmful = 40 if offset < 4 else 110
        for i in range(200):
            value = "harmful" if i < harmful else "safe"
            observations.append(Categorical(start + timedelta(minutes=i), (("q", "v"),),
                                            value))
    (alert, *_) = detect_shift("label_shift", observations, WINDOWS, config)
    ref = alert.detail["reference_share_intervals"]["harmful"]
    cur = alert.detail["current_share_intervals"]["harmful"]
    assert f"{ref[0]:.1%} [{ref[1]:.1%}, {ref[2]:.1%}]" in alert.message
    assert f"{cur[0]:.1%} [{cur[1]:.1%}, {cur[2]:.1%}]" in alert.message
    assert "descriptive" in alert.message and "biased upward" in alert.message
    summary = alert.as_dict()["intervals"]
    assert summary["category"] == "harmful" and summary["note"] == DIVERGENCE_NOTE
    assert (summary["current"]["ci_low"], summary["current"]["ci_high"]) == (cur[1], cur[2])
    assert summary["current"]["n"] == 200


def test_rate_alert_message_has_both_intervals_and_the_change_interval() -> None:
    config = DriftConfig()
    outcomes = []
    for offset in range(6):
        start = window_start(FIRST_WINDOW + offset, DAY)
        hits = 10 if offset < 4 else 40
        outcomes += [Outcome(start + timedelta(minutes=i), (("pool", "p"),), i < hits)
                     for i in range(100)]
    (alert, *_) = detect_rate_change("adjudication_rate", outcomes, WINDOWS, config,
                                     "increase")
    result = rate_change(40, 400, 40, 100, "increase")
    assert result.change_ci is not None
    assert f"10.0% [{result.reference_ci[0]:.1%}, {result.reference_ci[1]:.1%}]" in \
        alert.message
    assert f"[{result.change_ci[0] * 100:+.1f}, {result.change_ci[1] * 100:+.1f}]" in \
        alert.message
    assert alert.as_dict()["intervals"]["change"]["ci_low"] == pytest.approx(
        result.change_ci[0])


@pytest.mark.parametrize(("ref_k", "ref_n", "cur_k", "cur_n"),
                         [(48, 80, 56, 70), (3, 10, 9, 10), (0, 20, 0, 15), (5, 5, 0, 7)])
def test_change_interval_is_newcombes_hybrid_score_interval(
        ref_k: int, ref_n: int, cur_k: int, cur_n: int) -> None:
    # Newcombe (1998) method 10; 56/70 against 48/80 gives 0.0524 to 0.3339 there.
    result = rate_change(ref_k, ref_n, cur_k, cur_n)
    expected = confint_proportions_2indep(cur_k, cur_n, ref_k, ref_n, method="newcomb")
    assert result.change_ci == pytest.approx(expected, abs=1e-12)
    assert difference_interval(None, None, 0.5, (0.2, 0.8)) is None


def test_alert_intervals_of_an_alert_without_detail_are_none() -> None:
    assert alert_intervals("psi", {}) is None
    assert alert_intervals("rate_change", None) is None


def test_an_empty_bridge_row_has_no_shares() -> None:
    matrix = transition_matrix([("safe", "safe"), ("safe", "harmful")],
                               old_categories=["safe", "borderline"],
                               new_categories=["safe", "harmful"])
    assert all(cell[0] is None for cell in matrix.cells["borderline"].values())
    assert all(cell[1:] == (0.0, 1.0) for cell in matrix.cells["borderline"].values())
    assert matrix.cells["safe"]["harmful"][0] == 0.5
    assert json.loads(json.dumps(matrix.as_dict()))["cells"]["borderline"]["safe"][0] is None


def test_validation_false_alarm_rate_has_its_count_and_wilson_interval() -> None:
    for row in measure(seeds=1):
        n, k = row["windows_before_onset"], row["false_alarm_windows"]
        assert isinstance(n, int) and isinstance(k, int) and n == 4
        assert row["false_alarm_rate_before_onset"] == k / n
        assert (row["false_alarm_ci_low"], row["false_alarm_ci_high"]) == pytest.approx(
            proportion_confint(k, n, method="wilson"), abs=1e-12)


def test_alert_listing_without_full_keeps_the_intervals(engine: Engine, db_url: str) -> None:
    from hilt.quality.drift.stored import jsonable, list_alerts
    from hilt.store.tables.drift import DriftAlertRow
    from hilt.web.dashboard import lead_dashboard
    from hilt.web.render import env

    detail = rate_change(5, 100, 30, 100, "increase").as_dict()
    start = datetime(2031, 3, 2, tzinfo=window_start(FIRST_WINDOW, DAY).tzinfo)
    alert = Alert(monitor="adjudication_rate", group={"pool": "p"}, window_start=start,
                  window_end=start + DAY, reference_start=start - 4 * DAY,
                  test="fisher_exact", p_value=1e-6, alpha=0.01, effect_name="rate_change",
                  effect=0.25, min_effect=0.05, n_current=100, n_reference=100, n_tests=1,
                  message="adjudication_rate rose", detail=detail)
    with transaction(engine) as s:  # stored as the monitor run stores it
        s.add(DriftAlertRow(
            id=alert.id, monitor=alert.monitor, group_key=alert.group_key,
            group=alert.group, window_start=alert.window_start, window_end=alert.window_end,
            reference_start=alert.reference_start, test=alert.test, p_value=alert.p_value,
            alpha=alert.alpha, effect_name=alert.effect_name, effect=alert.effect,
            min_effect=alert.min_effect, n_current=alert.n_current,
            n_reference=alert.n_reference, n_tests=alert.n_tests, message=alert.message,
            detail=jsonable(alert.detail), status="open"))
    result = CliRunner().invoke(app, ["drift", "alerts", "--db", db_url])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert "detail" not in row
    change = row["intervals"]["change"]
    assert change["ci_low"] == pytest.approx(detail["change_ci"][0])
    assert row["intervals"]["current"] == {"value": 0.3, "ci_low": detail["current_ci"][0],
                                           "ci_high": detail["current_ci"][1], "n": 100}
    with transaction(engine) as s:
        (listed,) = list_alerts(s)
        data = lead_dashboard(s, start)
    assert listed["intervals"] == row["intervals"]
    page = env.get_template("lead.html").render(
        csrf="", principal=None, flash=None, prefix="", version="t", error=None,
        title="t", now=start, data=data)
    assert f"rate_change 0.250 [{change['ci_low']:.3f}, {change['ci_high']:.3f}]" in page
