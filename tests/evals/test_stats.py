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
from hilt.evals.stats import (
    discordant_counts,
    holm_adjust,
    mcnemar_exact,
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
    low, high = proportion_confint(0, 2, alpha=0.05, method="wilson")
    assert (two["ci_low"], two["ci_high"]) == pytest.approx((0.0, high))
    assert two["ci_high"] > 0.6
    # every item reviewed: the census is exact
    census = _stratified_rate([("h", 1.0), ("h", 0.0)], {"h": 2}, {"h": 2}, 2, 0.05)
    assert (census["ci_low"], census["ci_high"]) == (0.5, 0.5)
