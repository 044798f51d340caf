"""Agreement metrics against published values and established libraries."""

from __future__ import annotations

import math

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss

from hilt.quality import (
    Answers,
    bootstrap_interval,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    measure_agreement,
    percent_agreement,
)
from hilt.quality.agreement import CohenKappaStatistic

nan = np.nan
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders × 12 units.
KRIPPENDORFF_EXAMPLE = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
]
# The example of the Wikipedia article "Krippendorff's alpha": 3 coders × 15 units.
WIKIPEDIA_EXAMPLE = [
    [nan, nan, nan, nan, nan, 3, 4, 1, 2, 1, 1, 3, 3, nan, 3],
    [1, nan, 2, 1, 3, 3, 4, 3, nan, nan, nan, nan, nan, nan, nan],
    [nan, nan, 2, 1, 3, 4, 4, nan, 2, 1, 1, 3, 3, nan, 4],
]


@pytest.mark.parametrize(("level", "published"), [
    ("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)])
def test_krippendorff_worked_example(level: str, published: float) -> None:
    assert round(krippendorff_alpha(KRIPPENDORFF_EXAMPLE, level), 3) == published  # type: ignore[arg-type]


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.691), ("interval", 0.811)])
def test_krippendorff_wikipedia_example(level: str, published: float) -> None:
    assert round(krippendorff_alpha(WIKIPEDIA_EXAMPLE, level), 3) == published  # type: ignore[arg-type]


def test_krippendorff_ordinal_with_string_labels_and_value_domain() -> None:
    names = {1: "very low", 2: "low", 3: "mid", 4: "high", 5: "very high"}
    data = [[names[int(v)] if v == v else None for v in row] for row in KRIPPENDORFF_EXAMPLE]
    alpha = krippendorff_alpha(data, "ordinal", value_domain=list(names.values()))
    assert round(alpha, 3) == 0.815


def _random_reliability(rng: np.random.Generator, coders: int, units: int, values: int,
                        missing: float) -> np.ndarray:
    data = rng.integers(1, values + 1, size=(coders, units)).astype(float)
    # Make coders agree more than chance so alpha is not ~0 only.
    data[1:, : units // 2] = data[0, : units // 2]
    noise = rng.random(data.shape) < 0.3
    data[noise] = rng.integers(1, values + 1, size=int(noise.sum()))
    data[rng.random(data.shape) < missing] = nan
    return data


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
@pytest.mark.parametrize("seed", range(5))
def test_krippendorff_matches_package_on_random_data(level: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = _random_reliability(rng, coders=int(rng.integers(2, 7)),
                               units=int(rng.integers(20, 300)),
                               values=int(rng.integers(2, 8)), missing=0.25)
    ours = krippendorff_alpha(data, level)  # type: ignore[arg-type]
    theirs = krippendorff.alpha(reliability_data=data, level_of_measurement=level)  # type: ignore[arg-type]
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_krippendorff_sparse_pair_path_matches_dense(monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.quality import krippendorff as module

    data = _random_reliability(np.random.default_rng(7), 5, 200, 6, 0.2)
    dense = [krippendorff_alpha(data, level) for level in ("nominal", "ordinal", "ratio")]
    monkeypatch.setattr(module, "DENSE_LIMIT", 0)
    sparse = [krippendorff_alpha(data, level) for level in ("nominal", "ordinal", "ratio")]
    assert sparse == pytest.approx(dense, abs=1e-12)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(5))
def test_cohen_kappa_matches_sklearn(weights: str | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 5, 400)
    second = np.where(rng.random(400) < 0.6, first, rng.integers(0, 5, 400))
    expected = cohen_kappa_score(first, second, weights=weights)
    assert cohen_kappa(first, second, weights=weights) == pytest.approx(expected, abs=1e-9)  # type: ignore[arg-type]


def test_cohen_kappa_string_labels_match_sklearn() -> None:
    first = ["safe", "unsafe", "safe", "borderline", "safe", "unsafe"]
    second = ["safe", "unsafe", "borderline", "borderline", "unsafe", "unsafe"]
    assert cohen_kappa(first, second) == pytest.approx(cohen_kappa_score(first, second),
                                                       abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_kappa_matches_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    raters, categories, items = 5, 4, 150
    truth = rng.integers(0, categories, items)
    labels = np.where(rng.random((items, raters)) < 0.7, truth[:, None],
                      rng.integers(0, categories, (items, raters)))
    table = np.stack([(labels == c).sum(axis=1) for c in range(categories)], axis=1)
    assert fleiss_kappa(table) == pytest.approx(statsmodels_fleiss(table), abs=1e-9)


def test_percent_agreement_by_hand() -> None:
    # item 1: 3 raters all agree (1); item 2: two of three agree (2/6 pairs agree → 1/3);
    # item 3: a single rating (not pairable).
    data: list[list[float]] = [[1, 2, 1], [1, 2, nan], [1, 3, nan]]
    assert percent_agreement(data) == pytest.approx((1 + 1 / 3) / 2)


def _long(matrix: list[list[float]]) -> pd.DataFrame:
    rows = [(unit, coder, value) for coder, row in enumerate(matrix)
            for unit, value in enumerate(row) if value == value]
    return pd.DataFrame(rows, columns=["item", "reviewer", "label"])


def test_measure_agreement_long_format_matches_matrix_functions() -> None:
    frame = _long(KRIPPENDORFF_EXAMPLE)
    for level in ("nominal", "ordinal", "interval", "ratio"):
        result = measure_agreement(frame, "krippendorff", level, n_resamples=50)
        assert result.value == pytest.approx(krippendorff_alpha(KRIPPENDORFF_EXAMPLE, level),
                                             abs=1e-12)
    result = measure_agreement(frame, "percent", n_resamples=50)
    assert result.value == pytest.approx(percent_agreement(KRIPPENDORFF_EXAMPLE))


def test_two_reviewer_cohen_through_long_format() -> None:
    rng = np.random.default_rng(3)
    first = rng.integers(0, 3, 200)
    second = np.where(rng.random(200) < 0.7, first, rng.integers(0, 3, 200))
    frame = pd.DataFrame({"item": np.r_[np.arange(200), np.arange(200)],
                          "reviewer": ["a"] * 200 + ["b"] * 200,
                          "label": np.r_[first, second]})
    result = measure_agreement(frame, "cohen", kappa_weights="quadratic", n_resamples=200)
    expected = cohen_kappa_score(first, second, weights="quadratic")
    assert result.value == pytest.approx(expected, abs=1e-9)
    assert result.ci_low is not None and result.ci_high is not None
    assert result.ci_low < expected < result.ci_high


def test_bootstrap_interval_is_seeded_and_covers_truth() -> None:
    rng = np.random.default_rng(11)
    first = rng.integers(0, 4, 300)
    second = np.where(rng.random(300) < 0.8, first, rng.integers(0, 4, 300))
    statistic = CohenKappaStatistic(first, second, 4)
    once = bootstrap_interval(statistic, 300, 0.95, seed=5)
    again = bootstrap_interval(statistic, 300, 0.95, seed=5)
    other = bootstrap_interval(statistic, 300, 0.95, seed=6)
    assert once == again and once != other
    value = statistic(np.ones(300))
    assert once[0] < value < once[1]
    # Width shrinks like 1/sqrt(n): a 4× larger sample gives a clearly narrower interval.
    big_first = rng.integers(0, 4, 1200)
    big_second = np.where(rng.random(1200) < 0.8, big_first, rng.integers(0, 4, 1200))
    wide = once[1] - once[0]
    narrow = bootstrap_interval(CohenKappaStatistic(big_first, big_second, 4), 300)
    assert narrow[1] - narrow[0] < 0.75 * wide


def test_bootstrap_coverage_on_simulated_data() -> None:
    # Repeated samples from a known population: the 90% interval should cover the
    # population percent agreement in roughly 90% of samples.
    rng = np.random.default_rng(0)
    population_agreement = 0.7 + 0.3 * 0.5  # two raters, agree w.p. .7 else random binary
    covered = 0
    trials = 60
    for _ in range(trials):
        first = rng.integers(0, 2, 150)
        second = np.where(rng.random(150) < 0.7, first, rng.integers(0, 2, 150))
        frame = pd.DataFrame({"item": np.r_[np.arange(150), np.arange(150)],
                              "reviewer": [0] * 150 + [1] * 150,
                              "label": np.r_[first, second]})
        result = measure_agreement(frame, "percent", n_resamples=200, confidence=0.9,
                                   seed=int(rng.integers(1 << 30)))
        assert result.ci_low is not None and result.ci_high is not None
        covered += result.ci_low <= population_agreement <= result.ci_high
    assert 0.75 <= covered / trials <= 1.0


class TestDegenerateAgreement:
    def test_one_category_only_is_undefined_not_a_number_surprise(self) -> None:
        frame = pd.DataFrame({"item": [1, 1, 2, 2], "reviewer": ["a", "b", "a", "b"],
                              "label": ["x", "x", "x", "x"]})
        for metric in ("cohen", "fleiss", "krippendorff"):
            result = measure_agreement(frame, metric, n_resamples=40)
            assert result.value is None and result.ci_low is None
            assert result.note is not None and "one category" in result.note
        assert measure_agreement(frame, "percent", n_resamples=40).value == 1.0
        assert math.isnan(krippendorff_alpha([["x", "x"], ["x", "x"]]))

    def test_no_item_rated_twice(self) -> None:
        frame = pd.DataFrame({"item": [1, 2], "reviewer": ["a", "b"], "label": ["x", "y"]})
        for metric in ("percent", "fleiss", "krippendorff"):
            result = measure_agreement(frame, metric, n_resamples=40)
            assert result.value is None and result.n_items == 0
            assert result.note is not None and "two reviewers" in result.note

    def test_empty_answers(self) -> None:
        empty = Answers.from_columns([], [], [])
        result = measure_agreement(empty, "krippendorff", n_resamples=40)
        assert result.value is None and result.n_answers == 0

    def test_cohen_rejects_duplicates(self) -> None:
        duplicate = pd.DataFrame({"item": [1, 1, 1], "reviewer": ["a", "a", "b"],
                                  "label": [1, 2, 1]})
        with pytest.raises(ValueError, match="one answer per item"):
            measure_agreement(duplicate, "cohen")

    def test_lights_kappa_is_mean_of_pairwise_cohen(self) -> None:
        rng = np.random.default_rng(2)
        labels = rng.integers(0, 3, (3, 80))
        labels[1] = np.where(rng.random(80) < 0.6, labels[0], labels[1])
        frame = pd.DataFrame([(i, r, labels[r, i]) for r in range(3) for i in range(80)],
                             columns=["item", "reviewer", "label"])
        expected = np.mean([cohen_kappa_score(labels[a], labels[b])
                            for a, b in ((0, 1), (0, 2), (1, 2))])
        assert measure_agreement(frame, "cohen", n_resamples=40).value == pytest.approx(expected)


def test_answers_refuse_a_repeated_class() -> None:
    # A class listed twice has no single code (pandas would fail to index it).
    with pytest.raises(ValueError, match="repeat"):
        Answers.from_columns(["a", "a"], ["r1", "r2"], ["x", "y"], classes=["x", "y", "x"])
