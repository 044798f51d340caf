"""What the benchmarks print and compare: labels, targets, intervals, phases, URLs."""

from __future__ import annotations

from typing import Any

import numpy as np
import sqlalchemy as sa

from benchmarks.http import median_phase, schema_url, timed_phases, warm_clients
from benchmarks.regression import target_line
from benchmarks.training import hilt_row_name, paired_comparison, xstest_line
from hilt.train.classifier import error_rates
from hilt.train.reward import RewardConfig
from hilt.train.stats import rate


def test_schema_url_keeps_an_existing_query_string() -> None:
    url = schema_url("postgresql+psycopg://postgres@/test?host=/var/run/postgresql", "s1")
    parsed = sa.engine.make_url(url)
    assert parsed.query["host"] == "/var/run/postgresql"
    assert parsed.query["options"] == "-csearch_path=s1"
    assert parsed.database == "test"


def test_schema_url_without_query_string() -> None:
    parsed = sa.engine.make_url(schema_url("postgresql+psycopg://u@h:5432/db", "s2"))
    assert parsed.query == {"options": "-csearch_path=s2"}


def _phase(clients: int, cycles: float, over_k: int = 0) -> dict:
    return {"clients": clients, "cycles_per_s": cycles, "over_k": over_k, "twice": 0,
            "uncommitted_retries": 0, "failed": 1, "next_p50": cycles}


def test_median_phase_takes_the_median_repeat_and_sums_violations() -> None:
    row = median_phase([_phase(4, 30.0), _phase(4, 10.0, over_k=2), _phase(4, 20.0)])
    assert row["cycles_per_s"] == 20.0 and row["next_p50"] == 20.0
    assert row["over_k"] == 2 and row["failed"] == 3
    assert row["cycles_range"] == (10.0, 30.0) and row["repeats"] == 3


def test_timed_phases_warm_up_first_untimed_then_median_per_client_count() -> None:
    calls: list[int] = []
    speeds = iter([1.0, 50.0, 100.0, 60.0, 110.0, 40.0, 90.0])  # warm-up is the slow one

    def phase(clients: int) -> dict:
        calls.append(clients)
        return _phase(clients, next(speeds))

    rows = timed_phases(phase, [1, 4], warm=4, repeats=3)
    assert calls == [4, 1, 4, 1, 4, 1, 4]
    assert [r["clients"] for r in rows] == [1, 4]
    assert [r["cycles_per_s"] for r in rows] == [50.0, 100.0]
    assert all(r["cycles_range"][0] > 1.0 for r in rows)


def test_warm_up_reaches_every_server_worker() -> None:
    assert warm_clients([1, 4, 16], 2) == 16
    assert warm_clients([1], 2) == 4


def test_regression_target_is_not_judged_at_other_sizes() -> None:
    line = target_line(0.5, 10_000, 200)
    assert "not evaluated" in line and "met" not in line
    assert "→ met" in target_line(8.0, 100_000, 2000)
    assert "NOT met" in target_line(12.0, 100_000, 2000)


def test_quick_hilt_row_is_not_called_the_default() -> None:
    quick = hilt_row_name(RewardConfig(epochs=1), {}, "{}")
    assert "default (" not in quick and "1 epoch" in quick and "trains 3" in quick
    assert "128 tokens" in quick
    full = hilt_row_name(RewardConfig(), {}, "{}")
    assert full.startswith("hilt default") and "128 tokens" in full


def test_hilt_row_with_overrides_names_them() -> None:
    name = hilt_row_name(RewardConfig(ensemble=2), {"ensemble": 2}, '{"ensemble": 2}')
    assert not name.startswith("hilt default") and name.endswith('with {"ensemble": 2}')


def test_paired_comparison_counts_discordant_replies() -> None:
    classifier = np.array([True] * 8 + [False] * 2)
    rule = np.array([True] * 2 + [False] * 6 + [True] * 2)
    paired = paired_comparison(classifier, rule)
    assert (paired["classifier_only"], paired["rule_only"]) == (6, 2)
    assert abs(paired["mcnemar_p"] - 0.2890625) < 1e-9  # exact binomial, 8 discordant


def test_xstest_line_prints_error_rates_with_intervals_and_n() -> None:
    truth = np.array([True] * 5 + [False] * 15)
    predicted = np.array([True] * 4 + [False] + [True] * 3 + [False] * 12)
    errors = error_rates(predicted, truth)
    result: dict[str, Any] = {"held_out_model": "gpt4", "classifier_accuracy": rate(16, 20),
              "string_match_accuracy": rate(14, 20),
              "classifier_errors": errors,
              "paired": {"classifier_only": 3, "rule_only": 1, "mcnemar_p": 0.625}}
    line = xstest_line("default", result)
    fpr = errors["false_positive_rate"]
    assert f"0.200 [{fpr['ci_low']:.3f},{fpr['ci_high']:.3f}] n=15" in line
    assert "n=5" in line and "3/1" in line and "0.62" in line
