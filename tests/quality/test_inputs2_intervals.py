"""Intervals refuse counts they cannot describe (NaN, infinite, a share outside [0, 1])
instead of answering with a range that looks measured; what a model fit stores stays
inside what they accept; and an agreement metric past its limit names the option to
change, not a field of the answers file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hilt.errors import InputError
from hilt.quality.answers import Answers
from hilt.quality.calibration import expected_count_interval
from hilt.quality.calibration import wilson_interval as vector_wilson
from hilt.quality.dawid_skene import DawidSkene
from hilt.quality.files import agreement_file
from hilt.quality.pairwise_cohen import MAX_PAIR_ENTRIES
from hilt.train.stats import wilson_interval

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(("successes", "trials"), [
    (NAN, 10), (5, INF), (INF, INF), (5, NAN), (-1, 10), (11, 10), (3, 0), (10**400, 10)])
def test_wilson_refuses_counts_it_cannot_describe(successes: float, trials: float) -> None:
    with pytest.raises(ValueError, match="Wilson interval needs"):
        wilson_interval(successes, trials)  # type: ignore[arg-type]


def test_wilson_still_answers_what_it_can() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0.5, 1)  # a tie counted as half a success
    assert 0 < low < 0.5 < high < 1
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 10)[0] == 0.0
    with pytest.raises(ValueError):
        vector_wilson([1.0, NAN], [2, 2])


@pytest.mark.parametrize(("expected", "trials"), [
    (NAN, 10), (INF, 10), (12, 10), (-3, 10), (5, 0), (5, NAN), (1, -1)])
def test_expected_count_refuses_a_share_outside_zero_one(expected: float,
                                                         trials: float) -> None:
    with pytest.raises(ValueError, match="expected count"):
        expected_count_interval(expected, trials)  # type: ignore[arg-type]


def test_expected_count_takes_a_rounding_residue_as_its_bound() -> None:
    share, low, high = expected_count_interval(10 + 1e-12, 10)
    assert share == 1.0 and high == 1.0 and 0 < low < 1
    share, low, high = expected_count_interval(-1e-13, 10)
    assert share == 0.0 and low == 0.0 and 0 < high < 1
    assert expected_count_interval(0, 0) == (None, 0.0, 1.0)


@pytest.mark.parametrize("pseudocount", [0.0, 0.5])
def test_what_a_dawid_skene_fit_stores_is_accepted(pseudocount: float) -> None:
    # the quantities stored per fit and read back by /v1/quality/models and the reviewer
    # report: each reviewer's sum of posteriors of the labels given, and n_items × prior
    rng = np.random.default_rng(7)
    for _ in range(5):
        n = 400
        items = rng.integers(0, 60, n)
        reviewers = rng.integers(0, 9, n)
        keep = np.unique(items * 100 + reviewers, return_index=True)[1]
        labels = rng.choice(["a", "b", "c"], n, p=[0.8, 0.15, 0.05])
        answers = Answers.from_columns(items[keep].astype(str), reviewers[keep].astype(str),
                                       labels[keep], classes=["a", "b", "c", "d"])
        model = DawidSkene(correct_pseudocount=pseudocount, error_pseudocount=pseudocount,
                           prior_pseudocount=pseudocount).fit(answers)
        answered = model.probas_[answers.item_index, answers.label_index]
        expected = np.bincount(answers.reviewer_index, weights=answered,
                               minlength=answers.n_reviewers)
        counts = np.bincount(answers.reviewer_index, minlength=answers.n_reviewers)
        for e, c in zip(expected.tolist(), counts.tolist(), strict=True):
            share, low, high = expected_count_interval(e, c)
            assert share is not None and low <= share <= high
        for p in model.priors_.tolist():
            expected_count_interval(p * answers.n_items, answers.n_items)


def test_the_cohen_pair_limit_names_the_metric_option(tmp_path: Path) -> None:
    reviewers = 3200  # one item: 3200 × 3199 / 2 pairs, past the limit
    assert reviewers * (reviewers - 1) // 2 > MAX_PAIR_ENTRIES
    path = tmp_path / "answers.csv"
    path.write_text("item,reviewer,label\n" + "".join(
        f"i1,r{j},{'ab'[j % 2]}\n" for j in range(reviewers)))
    with pytest.raises(InputError) as caught:
        agreement_file(path, "cohen")
    err = caught.value
    assert (err.file, err.field) == (str(path), "--metric")
    assert "use fleiss or krippendorff" in err.reason
    with pytest.raises(InputError) as caught:
        agreement_file(path, "kappa")  # type: ignore[arg-type]
    assert caught.value.field == "--metric"
