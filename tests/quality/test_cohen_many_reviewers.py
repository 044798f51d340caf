"""Light's kappa (``--metric cohen``) with many reviewers: real crowd sets with dozens to
hundreds of reviewers, against scikit-learn and against a plain loop over reviewer pairs."""

from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.quality import Answers, measure_agreement
from hilt.quality.agreement import CohenKappaStatistic, KappaWeights
from hilt.quality.pairwise_cohen import MeanPairwiseCohenStatistic, pair_entries

runner = CliRunner()


def _crowd(shared_data: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(shared_data / "crowd" / name / "answer.csv").rename(
        columns={"question": "item", "worker": "reviewer", "answer": "label"})


def _synthetic_ordinal(seed: int = 0, n_reviewers: int = 30, n_items: int = 150) -> pd.DataFrame:
    """Ratings 1–5 (3 never used, so label positions differ from values) by 3–6 of
    ``n_reviewers`` reviewers per item, near a per-item true rating."""
    rng = np.random.default_rng(seed)
    scale = np.array([1, 2, 4, 5, 6])
    rows = []
    for item in range(n_items):
        truth = rng.integers(0, scale.size)
        for reviewer in rng.choice(n_reviewers, size=rng.integers(3, 7), replace=False):
            position = int(np.clip(truth + rng.integers(-1, 2), 0, scale.size - 1))
            rows.append((f"i{item}", f"r{reviewer}", int(scale[position])))
    return pd.DataFrame(rows, columns=["item", "reviewer", "label"])


def _sklearn_lights_kappa(frame: pd.DataFrame, weights: KappaWeights,
                          item_weight: pd.Series | None = None) -> tuple[float, int]:
    """Mean of scikit-learn's Cohen's kappa over reviewer pairs with common items
    (undefined pairs left out) and the number of pairs it averaged."""
    wide = frame.pivot(index="item", columns="reviewer", values="label")
    classes = np.sort(frame["label"].unique())
    present = wide.notna().to_numpy()
    values = wide.to_numpy()
    kappas = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined pairs warn; they are left out below
        for a, b in itertools.combinations(range(wide.shape[1]), 2):
            both = present[:, a] & present[:, b]
            if not both.any():
                continue
            sample_weight = (None if item_weight is None
                             else item_weight.reindex(wide.index[both]).to_numpy())
            if sample_weight is not None and not sample_weight.any():
                kappas.append(float("nan"))  # no item of the pair was drawn
                continue
            kappas.append(cohen_kappa_score(values[both, a], values[both, b],
                                            labels=classes, weights=weights,
                                            sample_weight=sample_weight))
    defined = np.array(kappas)[np.isfinite(kappas)]
    return float(defined.mean()), int(defined.size)


def _pairwise_loop(answers: Answers,
                   weights: KappaWeights) -> list[tuple[np.ndarray, CohenKappaStatistic]]:
    """One Cohen's kappa statistic per reviewer pair with common items, with the units it
    reads, in the order (lower reviewer code, higher reviewer code); units are the items
    rated at least twice, in item-code order."""
    wide = np.full((answers.n_items, answers.n_reviewers), -1, dtype=np.int64)
    wide[answers.item_index, answers.reviewer_index] = answers.label_index
    present = wide >= 0
    unit_of_item = np.cumsum(present.sum(axis=1) >= 2) - 1
    pairs = []
    for first, second in itertools.combinations(range(answers.n_reviewers), 2):
        both = np.flatnonzero(present[:, first] & present[:, second])
        if both.size:
            pairs.append((unit_of_item[both], CohenKappaStatistic(
                wide[both, first], wide[both, second], answers.n_classes, weights)))
    return pairs


@pytest.mark.slow
@pytest.mark.parametrize(("name", "weights"), [
    ("rte", None), ("dog", "linear"), ("dog", "quadratic")])
def test_value_is_the_mean_of_sklearn_pairwise_kappas_on_crowd_data(
        shared_data: Path, name: str, weights: KappaWeights) -> None:
    frame = _crowd(shared_data, name)
    assert frame["reviewer"].nunique() > 20
    expected, n_pairs = _sklearn_lights_kappa(frame, weights)
    result = measure_agreement(frame, "cohen", kappa_weights=weights, n_resamples=40)
    assert n_pairs > 100
    assert result.value == pytest.approx(expected, abs=1e-9)
    assert result.n_items == int((frame.groupby("item").size() >= 2).sum())


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_ordinal_labels_match_sklearn_with_and_without_item_weights(
        weights: KappaWeights) -> None:
    frame = _synthetic_ordinal()
    expected, _ = _sklearn_lights_kappa(frame, weights)
    result = measure_agreement(frame, "cohen", kappa_weights=weights, n_resamples=40)
    assert result.value == pytest.approx(expected, abs=1e-9)
    # A bootstrap resample weighs each item by its draw count: the statistic at those
    # weights is scikit-learn's kappa with the counts as sample weights.
    answers = Answers.from_frame(frame).in_order("weighted kappa")
    statistic = MeanPairwiseCohenStatistic(answers, weights)
    draws = np.random.default_rng(1).integers(0, statistic.n_units, statistic.n_units)
    counts = np.bincount(draws, minlength=statistic.n_units).astype(np.float64)
    item_weight = pd.Series(counts, index=answers.items[statistic.unit_ids])
    resampled, _ = _sklearn_lights_kappa(frame[frame["item"].isin(item_weight.index)],
                                         weights, item_weight)
    assert statistic(counts) == pytest.approx(resampled, abs=1e-9)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("source", ["duck", "dog", "ordinal"])
def test_every_pair_equals_the_pairwise_loop_on_random_weights(
        shared_data: Path, source: str, weights: KappaWeights) -> None:
    frame = _synthetic_ordinal(seed=3) if source == "ordinal" else _crowd(shared_data, source)
    answers = Answers.from_frame(frame).in_order("weighted kappa")
    statistic = MeanPairwiseCohenStatistic(answers, weights)
    rng = np.random.default_rng(7)
    n = statistic.n_units
    weight_vectors = [
        np.ones(n),
        np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64),
        rng.random(n) * 3.0,
        # Mostly zero: many pairs keep no item (undefined) or one category only.
        np.where(rng.random(n) < 0.9, 0.0, rng.integers(1, 4, n).astype(np.float64)),
    ]
    pairs = _pairwise_loop(answers, weights)
    for unit_weights in weight_vectors:
        reference = np.array([pair(unit_weights[units]) for units, pair in pairs])
        ours = statistic.pair_kappas(unit_weights)
        assert ours.shape == reference.shape
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12, equal_nan=True)
        defined = reference[np.isfinite(reference)]
        assert statistic(unit_weights) == pytest.approx(float(defined.mean()), abs=1e-12)
    assert np.isnan([pair(weight_vectors[-1][units]) for units, pair in pairs]).any()


@pytest.mark.parametrize(("name", "extra"), [("rte", []), ("dog", ["--weights", "linear"])])
def test_cli_reports_lights_kappa_with_an_interval_for_many_reviewers(
        shared_data: Path, tmp_path: Path, name: str, extra: list[str]) -> None:
    frame = _crowd(shared_data, name)
    path = tmp_path / "answers.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["quality", "agreement", str(path), "--metric", "cohen",
                                 *extra])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metric"] == "cohen"
    assert report["n_reviewers"] == frame["reviewer"].nunique() > 20
    assert report["ci_low"] <= report["value"] <= report["ci_high"]
    assert report["ci_low"] < report["ci_high"]
    assert report["n_resamples_defined"] == report["n_resamples"] == 1000


def test_size_guard_counts_pair_entries_not_reviewers(shared_data: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _crowd(shared_data, "duck")
    answers = Answers.from_frame(frame)
    entries = pair_entries(answers.item_index, answers.n_items)
    # 108 items × 39 answers each: 39·38/2 pairs per item.
    assert entries == int((frame.groupby("item").size() * (frame.groupby("item").size() - 1)
                           // 2).sum())
    monkeypatch.setattr("hilt.quality.pairwise_cohen.MAX_PAIR_ENTRIES", entries)
    assert measure_agreement(answers, "cohen", n_resamples=40).value is not None
    monkeypatch.setattr("hilt.quality.pairwise_cohen.MAX_PAIR_ENTRIES", entries - 1)
    with pytest.raises(ValueError, match=f"{entries:,}.*fleiss or krippendorff"):
        measure_agreement(answers, "cohen", n_resamples=40)
    path = tmp_path / "answers.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["quality", "agreement", str(path), "--metric", "cohen"])
    # An InputError naming the file: the command line prints it and exits with code 2.
    assert isinstance(result.exception, InputError), result.output
    assert result.exception.file == str(path) and "fleiss or krippendorff" in str(
        result.exception)
    assert result.stdout.strip() == ""
