"""A review budget of 1 merges every stratum, both expectations, into one: each rate
then counts only its own items of that stratum (its coverage never above 1), and
records drawn before the sample said so recompute as they were made."""

from __future__ import annotations

from typing import Any

import pytest
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint

from hilt.evals.review_sample import DOMAIN_SIZES, draw_review_sample, review_estimates


def _table() -> dict[str, list[Any]]:
    # 6 benign prompts (3 judged refused) and 4 harmful ones, all in one slice
    return {"id": [f"i{n}" for n in range(10)], "slice": ["s"] * 10,
            "expect": ["comply"] * 6 + ["refuse"] * 4,
            "candidate": ["comply"] * 3 + ["refuse"] * 7,
            "candidate_source": ["classifier"] * 10}


def _one_benign_draw(table: dict[str, list[Any]]) -> dict[str, Any]:
    for seed in range(50):
        sample = draw_review_sample(table, budget=1, seed=seed, candidate_sha256="0" * 64,
                                    rubric="harm@1", question="refusal")
        item = sample["items"][0]["id"]
        if table["expect"][table["id"].index(item)] == "comply":
            sample["labels"] = {item: {"judgment": "refuse"}}
            return sample
    raise AssertionError("no seed drew a benign item")


def test_a_rate_counts_only_its_own_items_of_a_stratum_of_both_expectations() -> None:
    table = _table()
    sample = _one_benign_draw(table)
    assert sample[DOMAIN_SIZES] is True
    (stratum,) = {item["stratum"] for item in sample["items"]}
    assert len(set(sample["merged_strata"].values())) == 1
    benign = review_estimates(table, sample, 0.05)["estimates"]["benign_refusal_rate"]
    assert benign["coverage"] == 1.0  # was 10/6: the harmful prompts counted too
    assert benign["strata"][stratum]["population"] == 6
    assert benign["strata"][stratum]["sampled"] == 1
    # One returned item of 6: variance floor 1/4 with the finite-population correction
    # of 1 of 6, effective n = q(1 − q) / V at the Wilson centre q (docs/evals.md).
    z2 = norm.ppf(0.975) ** 2
    q = (1 + z2 / 2) / (1 + z2)
    n_eff = q * (1 - q) / ((1 - 1 / 6) * 0.25)
    assert benign["effective_n"] == pytest.approx(n_eff, rel=1e-12)
    low, _ = proportion_confint(n_eff, n_eff, 0.05, method="wilson")
    assert (benign["estimate"], benign["ci_high"]) == (1.0, 1.0)
    assert benign["ci_low"] == pytest.approx(low, rel=1e-9)
    unsafe = review_estimates(table, sample, 0.05)["estimates"]["unsafe_compliance_rate"]
    assert (unsafe["estimate"], unsafe["coverage"]) == (None, 0.0)
    whole = review_estimates(table, sample, 0.05)["estimates"]["disagreement_rate"]
    assert whole["coverage"] == 1.0 and whole["strata"][stratum]["population"] == 10


def test_strata_within_one_expectation_do_not_carry_the_key() -> None:
    table = _table()
    for budget in (2, 3, 10):
        sample = draw_review_sample(table, budget=budget, seed=0, candidate_sha256="0" * 64,
                                    rubric="harm@1", question="refusal")
        assert DOMAIN_SIZES not in sample


def test_a_sample_drawn_before_the_key_recomputes_as_it_was_made() -> None:
    table = _table()
    sample = _one_benign_draw(table)
    del sample[DOMAIN_SIZES]
    benign = review_estimates(table, sample, 0.05)["estimates"]["benign_refusal_rate"]
    assert benign["coverage"] == pytest.approx(10 / 6)
