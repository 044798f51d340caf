"""Classifier evaluation and training checks: error rates, option checks, field names."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.train.classifier_eval import evaluate_classifier
from tests.train.conftest import HashEncoder


class _FixedModel:
    """A binary refuse/comply model that predicts from a lookup table."""

    classes_ = np.array(["comply", "refuse"])
    positive_label = "refuse"
    threshold = 0.5

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def predict(self, texts: Sequence[str], contexts: object = None,
                harmful: object = None) -> list[str]:
        return [self.answers[t] for t in texts]


def test_rows_with_a_label_the_model_lacks_are_not_counted_as_negatives() -> None:
    model = _FixedModel({"a": "refuse", "b": "comply", "c": "refuse", "d": "refuse"})
    # "c" and "d" are labelled partial: a class the binary model never had
    report = evaluate_classifier(model, ["a", "b", "c", "d"],  # type: ignore[arg-type]
                                 ["refuse", "comply", "partial", "partial"])
    assert report["unknown_labels"] == ["partial"]
    assert report["false_positive_rate"]["n"] == 1
    assert report["false_positive_rate"]["value"] == 0.0
    assert report["false_negative_rate"]["n"] == 1
    assert report["error_rates_excluded"] == 2
    assert report["n"] == 4  # accuracy still counts every row (a partial row is an error)


def _rows(path: Path, labels: Sequence[str], per_label: int = 6) -> Path:
    path.write_text("".join(json.dumps({"t": f"{label} text {i}", "y": label}) + "\n"
                            for label in labels for i in range(per_label)))
    return path


def _input_error(done: Any) -> InputError:
    """The bad-input error a command raised (``hilt`` prints it and exits 2)."""
    assert isinstance(done.exception, InputError), done.output
    return done.exception


def _train(tmp_path: Path, data: Path, *extra: str) -> Any:
    return CliRunner().invoke(app, ["train", "classifier", "--data", str(data),
                                    "--text-field", "t", "--label-field", "y",
                                    "--out", str(tmp_path / "clf"), "--no-register", *extra])


@pytest.mark.parametrize("option", [["--target-fpr", "0.1"], ["--target-fnr", "0.1"],
                                    ["--positive-label", "a"],
                                    ["--threshold-rule", "accuracy"]])
def test_two_class_options_are_refused_for_more_classes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: list[str]) -> None:
    monkeypatch.setattr("hilt.train.classifier.SentenceEncoder", HashEncoder)
    error = _input_error(_train(tmp_path, _rows(tmp_path / "rows.jsonl", ["a", "b", "c"]),
                                *option))
    assert error.field == option[0] and "two classes" in error.reason
    assert not (tmp_path / "clf").exists()


def test_an_unknown_positive_label_names_its_option(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hilt.train.classifier.SentenceEncoder", HashEncoder)
    error = _input_error(_train(tmp_path, _rows(tmp_path / "rows.jsonl", ["a", "b"]),
                                "--positive-label", "foo"))
    assert error.field == "--positive-label" and "'foo'" in error.reason


def test_too_few_examples_of_a_label_names_the_label_field(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hilt.train.classifier.SentenceEncoder", HashEncoder)
    data = _rows(tmp_path / "rows.jsonl", ["a", "b"], per_label=1)
    error = _input_error(_train(tmp_path, data))
    assert error.field == "y" and error.file == str(data.resolve())


def test_eval_classifier_names_the_model_option_for_a_folder_without_a_model(
        tmp_path: Path) -> None:
    data = _rows(tmp_path / "rows.jsonl", ["a", "b"])
    (tmp_path / "empty").mkdir()
    done = CliRunner().invoke(app, ["eval", "classifier", "--model", str(tmp_path / "empty"),
                                    "--data", str(data), "--text-field", "t",
                                    "--label-field", "y"])
    assert _input_error(done).field == "--model"


def test_eval_classifier_scores_blank_replies_like_the_check_scorer(
        tmp_path: Path, hash_encoder: None) -> None:
    from hilt.train.classifier import load_classifier

    data = _rows(tmp_path / "train.jsonl", ["comply", "refuse"])
    assert _train(tmp_path, data).exit_code == 0
    blank = tmp_path / "blank.jsonl"
    blank.write_text("".join(json.dumps({"t": t, "y": y}) + "\n" for t, y in
                             [("", "comply"), ("   ", "refuse"), ("refuse text 1", "refuse")]))
    done = CliRunner().invoke(app, ["eval", "classifier", "--model", str(tmp_path / "clf"),
                                    "--data", str(blank), "--text-field", "t",
                                    "--label-field", "y"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["n"] == 3
    # the same predictions hilt check --scorer makes for those replies
    predicted = list(load_classifier(str(tmp_path / "clf")).predict(["", "   ", "refuse text 1"]))
    confusion = report["confusion"]
    assert sum(confusion[t][p] for t in confusion for p in confusion[t]) == 3
    for truth, guess in zip(["comply", "refuse", "refuse"], predicted, strict=True):
        assert confusion[truth][guess] >= 1
