"""Statistics against statsmodels and scipy as oracles."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from hilt.evals.bootstrap import (
    bootstrap_means,
    derived_rng,
    paired_bootstrap_delta,
)
from hilt.evals.grouping import grouped
from hilt.evals.metrics import compute_metrics
from hilt.evals.stats import (
    discordant_counts,
    holm_adjust,
    mcnemar_exact,
    paired_difference_interval,
    rate_with_interval,
    wilson_interval,
)


@pytest.mark.parametrize("count,n", [(0, 1), (0, 10), (1, 10), (5, 10), (10, 10),
                                     (149, 250), (21, 250), (1, 200), (128, 200),
                                     (3, 100_000)])
@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.1])
def test_wilson_matches_statsmodels(count: int, n: int, alpha: float) -> None:
    low, high = wilson_interval(count, n, alpha)
    ref_low, ref_high = proportion_confint(count, n, alpha=alpha, method="wilson")
    assert low == pytest.approx(ref_low, abs=1e-12)
    assert high == pytest.approx(ref_high, abs=1e-12)


def test_rate_with_no_data_has_no_interval() -> None:
    rate = rate_with_interval(0, 0)
    assert rate.rate is None and rate.ci_low is None and rate.n == 0


@pytest.mark.parametrize("b,c", [(0, 0), (0, 1), (1, 0), (3, 7), (12, 1), (40, 41),
                                 (100, 60), (0, 25)])
def test_exact_mcnemar_matches_statsmodels(b: int, c: int) -> None:
    table = [[10, b], [c, 5]]
    expected = mcnemar(table, exact=True).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_exact_mcnemar_equals_scipy_binomtest() -> None:
    from scipy.stats import binomtest

    for b, c in [(2, 9), (15, 4), (30, 30)]:
        assert mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue)


def test_discordant_counts() -> None:
    cand = np.array([1, 1, 0, 0, 1], dtype=bool)
    ref = np.array([1, 0, 1, 0, 0], dtype=bool)
    assert discordant_counts(cand, ref) == (2, 1)


def test_holm_matches_statsmodels() -> None:
    rng = np.random.default_rng(3)
    for m in (1, 2, 5, 17):
        p = rng.uniform(0, 0.2, size=m)
        p[0] = p[1 % m]  # a tie
        expected = multipletests(p, method="holm")[1]
        assert holm_adjust(list(p)) == pytest.approx(list(expected))
    assert holm_adjust([]) == []


def _index_bootstrap(d: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(resamples, d.size))
    return d[idx].mean(axis=1)


def test_multinomial_bootstrap_has_the_index_bootstrap_distribution() -> None:
    rng = np.random.default_rng(0)
    cand = rng.random(400) < 0.3
    ref = rng.random(400) < 0.2
    d = cand.astype(float) - ref.astype(float)
    fast = bootstrap_means(d, 20_000, np.random.default_rng(1))
    slow = _index_bootstrap(d, 20_000, 2)
    assert fast.mean() == pytest.approx(d.mean(), abs=2e-3)
    assert fast.std() == pytest.approx(slow.std(), rel=0.03)
    # Theory: sd of the resampled mean is the plug-in sd / sqrt(n).
    assert fast.std() == pytest.approx(d.std() / np.sqrt(d.size), rel=0.03)
    assert np.quantile(fast, [0.025, 0.975]) == pytest.approx(
        np.quantile(slow, [0.025, 0.975]), abs=0.006)


def test_chunked_index_bootstrap_for_continuous_values() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=300)
    reps = bootstrap_means(x, 3000, np.random.default_rng(6), chunk_elements=1000)
    assert reps.shape == (3000,)
    assert reps.std() == pytest.approx(x.std() / np.sqrt(x.size), rel=0.06)


def test_paired_bootstrap_interval_contains_delta_and_is_reproducible() -> None:
    rng = np.random.default_rng(7)
    cand = rng.random(250) < 0.6
    ref = rng.random(250) < 0.1
    first = paired_bootstrap_delta(cand, ref, rng=derived_rng(0, "m", "s"))
    again = paired_bootstrap_delta(cand, ref, rng=derived_rng(0, "m", "s"))
    assert first == again
    assert first.ci_low is not None and first.ci_high is not None
    assert first.ci_low < first.estimate < first.ci_high  # type: ignore[operator]
    # Compare against scipy's own paired percentile bootstrap.
    from scipy.stats import bootstrap

    res = bootstrap((cand.astype(float), ref.astype(float)),
                    lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis), paired=True,
                    n_resamples=20_000, method="percentile", random_state=1)
    assert first.ci_low == pytest.approx(res.confidence_interval.low, abs=0.015)
    assert first.ci_high == pytest.approx(res.confidence_interval.high, abs=0.015)


def test_grouped_composes_any_metric() -> None:
    columns = {"slice": np.array(["b", "a", "b", "a", "c"]),
               "x": np.array([1.0, 2.0, 3.0, 4.0, 5.0])}
    per_slice = grouped(lambda c: float(c["x"].sum()), "slice")(columns)
    assert per_slice == {"all": 15.0, "a": 6.0, "b": 4.0, "c": 5.0}
    with pytest.raises(ValueError):
        grouped(lambda c: 0, "slice")({"slice": np.array(["all"])})


def test_stratified_review_interval_is_never_zero_width_from_a_sample() -> None:
    from statsmodels.stats.proportion import proportion_confint

    from hilt.evals.review_sample import _stratified_rate

    # two returned reviews that agree, from a stratum of 200: not a certainty
    two = _stratified_rate([("h", 0.0), ("h", 0.0)], {"h": 200}, {"h": 2}, 200, 0.05)
    assert two["estimate"] == 0.0
    # a single stratum at the variance floor: n_eff = n / (1 − n/N)
    n_eff = 2 / (1 - 2 / 200)
    low, high = proportion_confint(0, n_eff, alpha=0.05, method="wilson")
    assert (two["ci_low"], two["ci_high"]) == pytest.approx((0.0, high))
    assert two["effective_n"] == pytest.approx(n_eff)
    assert two["ci_high"] > 0.6
    # records before metrics version 3: Wilson on the returned count
    old = _stratified_rate([("h", 0.0), ("h", 0.0)], {"h": 200}, {"h": 2}, 200, 0.05,
                           version=2)
    low, high = proportion_confint(0, 2, alpha=0.05, method="wilson")
    assert (old["ci_low"], old["ci_high"]) == pytest.approx((0.0, high))
    # every item reviewed: the census is exact
    census = _stratified_rate([("h", 1.0), ("h", 0.0)], {"h": 2}, {"h": 2}, 2, 0.05)
    assert (census["ci_low"], census["ci_high"]) == (0.5, 0.5)


def _newcombe_reference(e: int, f: int, g: int, h: int, alpha: float) -> tuple[float, float]:
    """Newcombe (1998) method 10 written out in the paper's notation (e both, f first
    only, g second only, h neither), with statsmodels' Wilson limits."""
    n = e + f + g + h
    a_hat, b_hat = (e + f) / n, (e + g) / n
    l2, u2 = proportion_confint(e + f, n, alpha=alpha, method="wilson")
    l3, u3 = proportion_confint(e + g, n, alpha=alpha, method="wilson")
    big_a = e * h - f * g
    denominator = (e + f) * (g + h) * (e + g) * (f + h)
    if denominator == 0 or 0 <= big_a <= n / 2:
        phi = 0.0
    else:
        phi = (big_a - n / 2 if big_a > n / 2 else big_a) / denominator ** 0.5
    theta = (f - g) / n
    delta = ((a_hat - l2) ** 2 - 2 * phi * (a_hat - l2) * (u3 - b_hat)
             + (u3 - b_hat) ** 2) ** 0.5
    epsilon = ((u2 - a_hat) ** 2 - 2 * phi * (u2 - a_hat) * (b_hat - l3)
               + (b_hat - l3) ** 2) ** 0.5
    return theta - delta, theta + epsilon


def test_paired_difference_interval_published_example() -> None:
    # Cavo et al. (2012), complete response before/after consolidation therapy, as worked
    # in Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables" (2017),
    # ch. 8: Newcombe square-and-add estimate −0.0621, 95% CI −0.1186 to −0.0046.
    low, high = paired_difference_interval(59, 6, 16, 80)
    assert (round(low, 4), round(high, 4)) == (-0.1186, -0.0046)


@pytest.mark.parametrize("table", [(59, 6, 16, 80), (1, 1, 7, 12), (0, 0, 0, 3),
                                   (0, 3, 0, 0), (10, 0, 0, 15), (5, 9, 2, 34),
                                   (0, 12, 1, 0), (40, 0, 3, 1), (2, 2, 2, 2)])
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.01])
def test_paired_difference_interval_matches_newcombe_method_10(
        table: tuple[int, int, int, int], alpha: float) -> None:
    low, high = paired_difference_interval(*table, alpha=alpha)
    ref_low, ref_high = _newcombe_reference(*table, alpha)
    assert low == pytest.approx(max(-1.0, ref_low), abs=1e-12)
    assert high == pytest.approx(min(1.0, ref_high), abs=1e-12)
    n = sum(table)
    assert low <= (table[1] - table[2]) / n <= high and low < high


def test_paired_difference_interval_never_collapses() -> None:
    # no discordant pair: the width reflects n instead of the bootstrap's [0, 0]
    three, twenty_five = (paired_difference_interval(0, 0, 0, 3),
                          paired_difference_interval(0, 0, 0, 25))
    assert three[1] == pytest.approx(0.5615, abs=1e-4) and three[0] == -three[1]
    assert twenty_five[1] == pytest.approx(0.1332, abs=1e-4)
    with pytest.raises(ValueError):
        paired_difference_interval(0, 0, 0, 0)


def test_paired_difference_interval_covers_where_the_bootstrap_cannot() -> None:
    """Exact coverage over every 2×2 table of 25 pairs, candidate-only rate 4 %, no other
    discordance: a percentile bootstrap gives [0, 0] whenever no pair is discordant
    (36 % of runs here), missing the true +0.04 every time."""
    from scipy.stats import multinomial

    n, probs = 25, [0.02, 0.04, 0.0, 0.94]
    truth = probs[1] - probs[2]
    covered, bootstrap_covered = 0.0, 0.0
    for e in range(n + 1):
        for f in range(n + 1 - e):
            h = n - e - f
            p = multinomial.pmf([e, f, 0, h], n, probs)
            low, high = paired_difference_interval(e, f, 0, h)
            covered += p * (low <= truth <= high)
            cand = np.array([1] * (e + f) + [0] * h, dtype=bool)
            ref = np.array([1] * e + [0] * (f + h), dtype=bool)
            boot = paired_bootstrap_delta(cand, ref, resamples=400,
                                          rng=np.random.default_rng(e * 100 + f))
            bootstrap_covered += p * (boot.ci_low <= truth <= boot.ci_high)  # type: ignore[operator]
    assert covered >= 0.93
    assert bootstrap_covered < 0.7


def test_metrics_versions_of_the_delta_interval() -> None:
    cand = np.zeros(3, dtype=bool)
    columns = {"slice": np.array(["s"] * 3), "expect_refuse": np.zeros(3, dtype=bool),
               "candidate_refused": cand, "reference_refused": cand.copy()}
    current = compute_metrics(columns)
    delta = current["slices"]["all"]["benign_refusal_rate"]["delta"]
    assert current["metrics_version"] == 3
    assert delta["interval"] == "Newcombe paired score"
    assert delta["ci_low"] < 0 < delta["ci_high"]
    old = compute_metrics(columns, version=1)["slices"]["all"]["benign_refusal_rate"]["delta"]
    assert (old["ci_low"], old["ci_high"]) == (0.0, 0.0)  # what version-1 records hold
    with pytest.raises(ValueError, match="metrics version"):
        compute_metrics(columns, version=4)
