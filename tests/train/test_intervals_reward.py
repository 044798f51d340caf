"""Reward-model figures keep their intervals and n: bootstrap limits, ECE, reliability
bins, the length correlation over pairs, and the registry headline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hilt.train.pairs import Pair
from hilt.train.reward_eval import (
    _interval,
    accuracy_block,
    calibration,
    evaluate_reward_model,
)
from hilt.train.reward_refresh import _headline, reliability_title
from hilt.train.stats import (
    fisher_interval,
    pearson,
    pearson_by_pair,
    percentile_bootstrap,
    plot_reliability,
    wilson_interval,
)


class _LengthScorer:
    """Rewards the longer reply (a stand-in model)."""

    def score(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        return np.array([len(r) / 10.0 for r in responses])


def _pairs(n: int) -> list[Pair]:
    # chosen is the longer reply except in every third pair, so the chosen-is-shorter
    # slice holds pairs and the length correlation is defined
    out = []
    for i in range(n):
        long, short = "Here is a careful answer with details" + " more" * i, "No."
        chosen, rejected = (short, long) if i % 3 == 0 else (long, short)
        out.append(Pair(prompt=f"\n\nHuman: question {i}\n\nAssistant:", chosen=chosen,
                        rejected=rejected))
    return out


def test_no_bootstrap_interval_when_every_pair_has_the_same_outcome() -> None:
    block = accuracy_block(np.ones(6))
    assert block["bootstrap_ci_low"] is None and block["bootstrap_ci_high"] is None
    assert "same value" in block["bootstrap_note"]
    # the Wilson interval beside it is still there, and holds the estimate
    assert block["ci_low"] == pytest.approx(wilson_interval(6, 6)[0])
    assert block["ci_high"] == 1.0


def test_no_bootstrap_interval_from_two_pairs() -> None:
    block = accuracy_block(np.array([1.0, 2.0]))
    assert block["bootstrap_ci_low"] is None and block["bootstrap_ci_high"] is None
    assert "only 2 pair(s)" in block["bootstrap_note"]


def test_bootstrap_interval_given_when_outcomes_vary() -> None:
    block = accuracy_block(np.array([1.0, -1.0, 1.0, 1.0, 1.0, 1.0, -1.0, 1.0]))
    assert block["bootstrap_note"] is None
    assert block["bootstrap_ci_low"] <= block["value"] <= block["bootstrap_ci_high"]


def test_ece_interval_holds_the_ece() -> None:
    # a sample whose resampled ECEs all lie above its own ECE
    delta = np.random.default_rng(36).normal(0.8, 1.5, 40)
    ece = calibration(delta)[0]
    ci = _interval(delta, lambda d: calibration(d)[0], 1000)
    assert ci is not None
    assert ci["low"] <= ece <= ci["high"]


def test_ece_interval_holds_the_ece_on_random_samples() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        delta = rng.normal(0.8, 1.5, int(rng.integers(20, 60)))
        ece = calibration(delta)[0]
        ci = _interval(delta, lambda d: calibration(d)[0], 200)
        assert ci is not None and ci["low"] <= ece <= ci["high"]


def test_percentile_bootstrap_is_seeded() -> None:
    values = np.random.default_rng(1).normal(size=30)
    assert percentile_bootstrap(values, seed=4) == percentile_bootstrap(values, seed=4)


def test_reliability_bins_carry_wilson_intervals_of_the_observed_rate() -> None:
    delta = np.random.default_rng(2).normal(0.5, 1.0, 30)
    _, bins = calibration(delta)
    for b in bins:
        if not b["n"]:
            assert b["observed_ci_low"] is None and b["observed_ci_high"] is None
            continue
        successes = round(b["observed"] * b["n"])
        low, high = wilson_interval(successes, b["n"])
        assert b["observed_ci_low"] == pytest.approx(low)
        assert b["observed_ci_high"] == pytest.approx(high)
        assert b["observed_ci_low"] <= b["observed"] <= b["observed_ci_high"]


def test_reliability_title_gives_the_ece_interval() -> None:
    title = reliability_title(6, 0.0559, "held-out ",
                              ece_ci={"low": 0.0207, "high": 0.1019, "note": None})
    assert "ECE=0.056 [95% CI 0.021, 0.102]" in title
    none = reliability_title(3, 0.1, ece_ci={"low": None, "high": None, "note": "only 3"})
    assert "no bootstrap interval" in none


def test_reliability_diagram_draws_error_bars(tmp_path: Any, monkeypatch: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    drawn: list[Any] = []
    original = Axes.errorbar

    def record(self: Axes, x: Any, y: Any, *args: Any, **kwargs: Any) -> Any:
        drawn.append((list(x), kwargs.get("yerr")))
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "errorbar", record)
    _, bins = calibration(np.random.default_rng(3).normal(0.8, 1.5, 20))
    plot_reliability(bins, str(tmp_path / "r.png"), "t")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert len(drawn) == 1 and len(drawn[0][0]) == sum(1 for b in bins if b["n"])


def test_length_correlation_interval_counts_pairs_not_replies() -> None:
    rng = np.random.default_rng(5)
    prompt_effect = rng.normal(size=(20, 1))
    x1, x2 = (prompt_effect[:, 0] + rng.normal(size=20) for _ in range(2))
    y1, y2 = 0.5 * x1 + rng.normal(size=20), 0.5 * x2 + rng.normal(size=20)
    result = pearson_by_pair(x1, x2, y1, y2)
    naive = pearson(np.concatenate([x1, x2]), np.concatenate([y1, y2]))
    assert result["value"] == pytest.approx(naive["value"])
    assert (result["n"], result["n_pairs"]) == (40, 20)
    by_pairs = fisher_interval(result["value"], 20)
    assert result["ci_low"] == pytest.approx(by_pairs["ci_low"])
    assert result["ci_high"] == pytest.approx(by_pairs["ci_high"])
    # wider than the interval that treats the 40 replies as independent points
    assert result["ci_low"] < naive["ci_low"] and result["ci_high"] > naive["ci_high"]


def test_length_correlation_without_enough_pairs_has_no_interval() -> None:
    result = pearson_by_pair([1.0, 2.0, 3.0], [2.0, 1.0, 5.0], [1.0, 3.0, 2.0],
                             [0.0, 1.0, 4.0])
    assert result["value"] is not None and result["ci_low"] is None
    assert "3 pair(s)" in result["note"]


def test_reward_report_counts_pairs_for_the_length_correlation() -> None:
    report = evaluate_reward_model(_LengthScorer(), _pairs(9))
    correlation = report["bias_probes"]["reward_length_correlation"]
    assert correlation["n"] == 18 and correlation["n_pairs"] == 9
    assert correlation["ci_low"] == pytest.approx(
        fisher_interval(correlation["value"], 9)["ci_low"])


def test_registry_headline_keeps_intervals_and_n() -> None:
    report = evaluate_reward_model(_LengthScorer(), _pairs(9))
    head = _headline(report)
    assert head["ece_ci"] == report["ece_ci"] and head["ece_ci"]["low"] is not None
    correlation = head["reward_length_correlation_ci"]
    probe = report["bias_probes"]["reward_length_correlation"]
    assert head["reward_length_correlation"] == probe["value"]
    assert (correlation["low"], correlation["high"]) == (probe["ci_low"], probe["ci_high"])
    assert (correlation["n"], correlation["n_pairs"]) == (18, 9)
    shorter = head["accuracy_chosen_shorter_ci"]
    block = report["bias_probes"]["accuracy_chosen_shorter"]
    assert head["accuracy_chosen_shorter"] == block["value"]
    assert (shorter["low"], shorter["high"], shorter["n"]) == (block["ci_low"],
                                                              block["ci_high"], 3)
    assert head["accuracy_ci"]["n"] == 9
