"""Agreement inputs that used to give a wrong number without a word: a reviewer's
repeated answer, an infinite rating, a negative ratio-scale rating, a gap in a Cohen
vector, a bad Fleiss count, a missing count in an item-level interval."""

from __future__ import annotations

import math
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.quality import measure_agreement
from hilt.quality.agreement import cohen_kappa, fleiss_kappa
from hilt.quality.calibration import item_wilson_interval
from hilt.quality.krippendorff import krippendorff_alpha


def _answers_with_a_resubmission() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two reviewers over 20 items; reviewer ``a`` sent items 0–9 twice (same label)."""
    rng = np.random.default_rng(0)
    rows = []
    for item in range(20):
        first, second = int(rng.integers(3)), int(rng.integers(3))
        rows += [(item, "a", first), (item, "b", second)]
        if item < 10:
            rows.append((item, "a", first))
    frame = pd.DataFrame(rows, columns=["item", "reviewer", "label"])
    return frame, frame.drop_duplicates(["item", "reviewer"])


@pytest.mark.parametrize("metric", ["percent", "fleiss", "krippendorff", "cohen"])
def test_a_reviewer_answering_an_item_twice_is_refused_by_every_metric(metric: str) -> None:
    # The repeat used to count as a second, agreeing rater: alpha 0.29 where the
    # answers hold 0.12 (Krippendorff's package on the one-answer-per-reviewer matrix).
    frame, _ = _answers_with_a_resubmission()
    with pytest.raises(ValueError, match="one answer per item and reviewer") as caught:
        measure_agreement(frame, metric, n_resamples=40)
    assert "reviewer 'a' answers item 0 at row positions 0 and 2" in str(caught.value)


def test_without_the_repeats_alpha_matches_the_krippendorff_package() -> None:
    _, once = _answers_with_a_resubmission()
    matrix = once.pivot(index="reviewer", columns="item", values="label").to_numpy(float)
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    value = measure_agreement(once, "krippendorff", n_resamples=40).value
    assert value == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("level", ["interval", "ratio"])
def test_an_infinite_rating_is_an_input_error_not_an_undefined_alpha(level: str) -> None:
    # It used to give value None with the note "all pairable ratings fall in one
    # category" (and NumPy warnings): the sums of differences were NaN.
    frame = pd.DataFrame({"item": [1, 1, 2, 2, 3, 3], "reviewer": ["a", "b"] * 3,
                          "label": [1.0, 2.0, 3.0, np.inf, 2.0, 2.0]})
    with pytest.raises(InputError, match="label inf at row position 3") as caught:
        measure_agreement(frame, "krippendorff", level=level, n_resamples=40)
    assert caught.value.field == "label"
    with pytest.raises(ValueError, match="finite"):
        krippendorff_alpha([[1.0, 3.0, 2.0], [2.0, np.inf, 2.0]], level)


@pytest.mark.parametrize("gap", [np.nan, None, "nan"])
@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_leaves_out_items_a_rater_did_not_label(gap: object, weights: str | None
                                                            ) -> None:
    # A gap used to be a category of its own (nan) or a TypeError (None).
    rng = np.random.default_rng(4)
    first = rng.integers(1, 5, 40)
    second = np.where(rng.random(40) < 0.6, first, rng.integers(1, 5, 40))
    with_gaps_a: list[object] = [str(v) if gap == "nan" else int(v) for v in first]
    with_gaps_b: list[object] = [str(v) if gap == "nan" else int(v) for v in second]
    for k in (3, 11, 25):
        with_gaps_a[k] = gap
    with_gaps_b[30] = gap
    both = np.ones(40, dtype=bool)
    both[[3, 11, 25, 30]] = False
    expected = cohen_kappa_score(first[both], second[both], weights=weights)
    value = cohen_kappa(np.asarray(with_gaps_a, dtype=object),
                        np.asarray(with_gaps_b, dtype=object), weights=weights)
    assert value == pytest.approx(expected, abs=1e-12)


def test_cohen_kappa_with_float_gaps_matches_scikit_learn_on_the_rated_items() -> None:
    value = cohen_kappa([1.0, np.nan, 2.0, 2.0, 1.0], [1.0, 2.0, 2.0, 1.0, np.nan])
    assert value == pytest.approx(cohen_kappa_score([1, 2, 2], [1, 2, 1]))
    assert math.isnan(cohen_kappa([np.nan, 1.0], [2.0, np.nan]))


@pytest.mark.parametrize("table", [[[2, -1], [1, 1], [0, 2]],
                                   [[np.nan, 2], [1, 1], [0, 2]],
                                   [[np.inf, 2], [1, 1], [0, 2]]])
def test_fleiss_kappa_refuses_counts_that_are_not_counts(table: list[list[float]]) -> None:
    # [[2, -1], [1, 1]] used to give -1.0, and a NaN row was silently dropped.
    with pytest.raises(ValueError, match="finite counts"):
        fleiss_kappa(table)


def test_ratio_alpha_refuses_negative_values() -> None:
    # ((c-k)/(c+k))^2 is 0 for -3 and 3: raters who always differ in sign got alpha 1.0
    # (the krippendorff package gives 1.0 too), where interval alpha gives -0.8.
    opposite = [[-1.0, -2.0, -3.0, -4.0, -5.0], [1.0, 2.0, 3.0, 4.0, 5.0]]
    assert krippendorff_alpha(opposite, "interval") == pytest.approx(-0.8)
    with pytest.raises(ValueError, match="at least 0"):
        krippendorff_alpha(opposite, "ratio")
    frame = pd.DataFrame({"item": [1, 1, 2, 2], "reviewer": ["a", "b"] * 2,
                          "label": [1.0, -1.0, 2.0, -2.0]})
    with pytest.raises(InputError, match="label -1.0 at row position 1") as caught:
        measure_agreement(frame, "krippendorff", level="ratio", n_resamples=40)
    assert caught.value.field == "label"
    zero_based = [[0.0, 2.0, 3.0, 1.0, 4.0], [0.0, 2.0, 2.0, 1.0, 5.0]]
    expected = krippendorff.alpha(reliability_data=zero_based, level_of_measurement="ratio")
    assert krippendorff_alpha(zero_based, "ratio") == pytest.approx(expected, abs=1e-12)


def test_cli_ratio_alpha_names_the_line_of_a_negative_label(tmp_path: Path) -> None:
    answers = tmp_path / "answers.csv"
    answers.write_text("item,reviewer,label\na,r1,2\na,r2,3\nb,r1,-1\nb,r2,1\n")
    result = CliRunner().invoke(app, ["quality", "agreement", str(answers), "--metric",
                                      "krippendorff", "--level", "ratio"])
    error = result.exception
    assert isinstance(error, InputError), result.output
    assert (error.file, error.line, error.field) == (str(answers), 4, "label")
    assert "negative" in str(error) and "--level interval" in str(error)


@pytest.mark.parametrize(("successes", "trials"), [([np.nan, 1.0], [1.0, 1.0]),
                                                   ([1.0, 1.0], [1.0, np.nan])])
def test_item_interval_refuses_a_missing_count(successes: list[float], trials: list[float]
                                               ) -> None:
    # NaN fails every comparison: it used to pass the check and come back as value nan.
    with pytest.raises(ValueError, match="finite"):
        item_wilson_interval(successes, trials)
