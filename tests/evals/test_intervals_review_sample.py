"""The review sample's stratified interval keeps its width when most strata agree: each
stratum's variance is floored at its Wilson-centre proportion's, so one more disagreeing
review never narrows the interval (metrics version 3); older records keep their method."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from hilt.evals.review_sample import draw_review_sample, review_estimates
from hilt.evals.stats import wilson_interval, z_value
from hilt.gate.decision import build_decision, record_hash, verify
from hilt.gate.policy import default_policy

BENIGN = "benign_refusal_rate"


def _benign(complied: int, refused: int) -> dict[str, list[Any]]:
    """Benign prompts the classifier judged compliant (``complied``) or refused."""
    ids = [f"c{i}" for i in range(complied)] + [f"r{i}" for i in range(refused)]
    return {"id": ids, "slice": ["general"] * len(ids), "expect": ["comply"] * len(ids),
            "candidate": ["comply"] * complied + ["refuse"] * refused,
            "candidate_source": ["classifier"] * len(ids)}


def _labelled(table: dict[str, list[Any]], sample: dict[str, Any],
              refusals: dict[str, int]) -> dict[str, Any]:
    """The sample with human labels: the first ``refusals[stratum]`` items of a stratum
    are refusals, the rest compliance."""
    seen: dict[str, int] = {}
    labels = {}
    for item in sample["items"]:
        h = item["stratum"]
        seen[h] = seen.get(h, 0) + 1
        refused = seen[h] <= refusals.get(h, 0)
        labels[item["id"]] = {"judgment": "refuse" if refused else "comply"}
    return {**sample, "labels": labels}


def _audit_example() -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """400 benign prompts, 390 judged compliant and 10 refused; a budget of 20 draws
    19 + 1."""
    table = _benign(390, 10)
    sample = draw_review_sample(table, budget=20, seed=0, candidate_sha256="x" * 64,
                                rubric="r", question="refusal")
    sizes: dict[str, int] = {}
    for item in sample["items"]:
        sizes[item["stratum"]] = sizes.get(item["stratum"], 0) + 1
    assert sizes == {"general|comply|comply": 19, "general|comply|refuse": 1}
    return table, sample


def test_one_disagreeing_review_does_not_narrow_the_interval() -> None:
    table, sample = _audit_example()
    agree = review_estimates(table, _labelled(table, sample, {}), 0.05)["estimates"][BENIGN]
    one = review_estimates(table, _labelled(table, sample, {"general|comply|refuse": 1}),
                           0.05)["estimates"][BENIGN]
    assert agree["estimate"] == 0.0 and agree["ci_low"] == 0.0
    assert one["estimate"] == pytest.approx(0.025)
    # Before the floor: 0 [0, 0.161], then 0.025 [0.010, 0.061] — the refusal tightened
    # the upper bound although 97.5 % of the population rests on 19 agreeing reviews.
    assert one["ci_high"] >= agree["ci_high"]
    assert one["ci_low"] <= one["estimate"] <= one["ci_high"]
    # 0 of 19 alone allows up to about 17 %; the stratified bound stays of that order
    assert one["ci_high"] > 0.15
    assert agree["ci_high"] == pytest.approx(0.149, abs=5e-4)
    assert one["ci_high"] == pytest.approx(0.183, abs=5e-4)


def test_floored_interval_follows_the_documented_formula() -> None:
    table, sample = _audit_example()
    result = review_estimates(table, _labelled(table, sample, {"general|comply|refuse": 1}),
                              0.05)["estimates"][BENIGN]
    z2 = z_value(0.05) ** 2
    # (N_h, n_h, k_h): the agreeing 19-item stratum and the single refusal
    strata = [(390, 19, 0), (10, 1, 1)]
    q = [(k + z2 / 2) / (n + z2) for _, n, k in strata]
    s2 = [max(0.0, q[0] * (1 - q[0])), 0.25]
    weights = [size / 400 for size, _, _ in strata]
    variance = sum(w * w * (1 - n / size) * s / n
                   for w, (size, n, _), s in zip(weights, strata, s2, strict=True))
    centre = sum(w * qh for w, qh in zip(weights, q, strict=True))
    n_eff = centre * (1 - centre) / variance
    assert result["effective_n"] == pytest.approx(n_eff)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx(
        wilson_interval(0.025 * n_eff, n_eff, 0.05))


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
def test_bounds_never_fall_when_a_review_disagrees_more(alpha: float) -> None:
    """Every labelling of a three-stratum sample: one more refusal in any stratum moves
    neither bound down, and every interval holds its estimate."""
    table = _benign(60, 12)
    table["slice"] = ["a"] * 40 + ["b"] * 20 + ["a"] * 12
    sample = draw_review_sample(table, budget=9, seed=1, candidate_sha256="y" * 64,
                                rubric="r", question="refusal")
    sizes: dict[str, int] = {}
    for item in sample["items"]:
        sizes[item["stratum"]] = sizes.get(item["stratum"], 0) + 1
    names = sorted(sizes)
    assert len(names) == 3

    def bounds(counts: tuple[int, ...]) -> tuple[float, float, float]:
        labelled = _labelled(table, sample, dict(zip(names, counts, strict=True)))
        e = review_estimates(table, labelled, alpha)["estimates"][BENIGN]
        assert e["ci_low"] <= e["estimate"] <= e["ci_high"]
        assert e["ci_high"] > e["ci_low"]  # no stratum is a census: never a point
        return e["ci_low"], e["estimate"], e["ci_high"]

    for counts in itertools.product(*(range(sizes[h] + 1) for h in names)):
        low, _, high = bounds(counts)
        for j, h in enumerate(names):
            if counts[j] < sizes[h]:
                more = tuple(c + (i == j) for i, c in enumerate(counts))
                low2, _, high2 = bounds(more)
                assert high2 >= high - 1e-12 and low2 >= low - 1e-12, (counts, more)


def test_a_census_of_every_stratum_is_exact() -> None:
    table = _benign(6, 2)
    sample = draw_review_sample(table, budget=8, seed=0, candidate_sha256="z" * 64,
                                rubric="r", question="refusal")
    e = review_estimates(table, _labelled(table, sample, {"general|comply|refuse": 1}),
                         0.05)["estimates"][BENIGN]
    assert e["ci_low"] == e["estimate"] == e["ci_high"] == pytest.approx(1 / 8)
    assert e["effective_n"] is None


def test_version_two_records_keep_the_unfloored_interval_and_still_verify() -> None:
    table, sample = _audit_example()
    labelled = _labelled(table, sample, {"general|comply|refuse": 1})
    old = review_estimates(table, labelled, 0.05, version=2)
    estimate = old["estimates"][BENIGN]
    assert "effective_n" not in estimate and "floored" not in old["estimator"]
    # what version-2 records hold: the interval the refusal had narrowed
    assert (estimate["ci_low"], estimate["ci_high"]) == pytest.approx((0.0101, 0.0605),
                                                                      abs=1e-4)
    judgments = {**table, "reference": list(table["candidate"]),
                 "reference_source": list(table["candidate_source"])}
    args: dict[str, Any] = {
        "policy": default_policy(), "judgments": judgments,
        "versions": {"candidate": {"id": "m2"}, "reference": {"id": "m1"}},
        "facts": {"suites": ["s@1"]}, "created_at": "2025-01-01T00:00:00+00:00",
        "review_sample": labelled}
    v2 = build_decision(settings={"alpha": 0.05, "bootstrap_resamples": 200, "seed": 0,
                                  "metrics_version": 2}, **args)
    assert v2["metrics"]["review_sample"]["estimates"][BENIGN]["ci_high"] == pytest.approx(
        estimate["ci_high"])
    assert verify(v2).ok
    v3 = build_decision(settings={"alpha": 0.05, "bootstrap_resamples": 200, "seed": 0,
                                  "metrics_version": 3}, **args)
    assert v3["metrics"]["review_sample"]["estimates"][BENIGN]["ci_high"] > 0.15
    assert verify(v3).ok
    # a version-2 record relabelled as version 3 no longer matches its metrics
    edited = copy.deepcopy(v2)
    edited["inputs"]["settings"]["metrics_version"] = 3
    edited["hash"] = record_hash(edited)
    assert not verify(edited).ok
