"""Model listings show accuracy with its interval and n; classifier evaluation counts
identical rows once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from hilt.store.db import transaction
from hilt.train.classifier import ClassifierConfig
from hilt.train.classifier_eval import LabelledTexts, evaluate_classifier
from hilt.train.classifier_refresh import refresh_classifier
from hilt.train.registry import headline_accuracy, list_models, register_model_version
from hilt.train.stats import rate, wilson_interval


def _manifest(kind: str, metrics: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "base_model": "m", "data": {"path": "p", "hash": "ab" * 32,
                                                      "records": 10},
            "config": {}, "seed": 0, "code_version": "hilt 0.1.0", "metrics": metrics}


def test_model_listing_shows_accuracy_with_interval_and_n(engine: Engine,
                                                           tmp_path: Path) -> None:
    low, high = wilson_interval(6, 6)
    reward = {"n": 6, "accuracy": 1.0,
              "accuracy_ci": {"method": "wilson", "low": low, "high": high}}
    classifier = {"accuracy": rate(7, 7), "validation": {}}
    sft = {"train_loss": 1.2, "validation_loss": 1.4, "validation_n": 3}
    with transaction(engine) as session:
        for kind, metrics in (("reward", reward), ("classifier", classifier), ("sft", sft)):
            register_model_version(session, manifest=_manifest(kind, metrics),
                                   artifact_path=str(tmp_path / kind))
    with transaction(engine) as session:
        listed = {m["kind"]: m for m in list_models(session)}
    assert listed["reward"]["accuracy"] == 1.0
    assert listed["reward"]["accuracy_ci_low"] == pytest.approx(low)
    assert listed["reward"]["accuracy_ci_high"] == 1.0
    assert listed["reward"]["accuracy_n"] == 6
    clf_low = wilson_interval(7, 7)[0]
    assert (listed["classifier"]["accuracy"], listed["classifier"]["accuracy_n"]) == (1.0, 7)
    assert listed["classifier"]["accuracy_ci_low"] == pytest.approx(clf_low)
    assert listed["classifier"]["accuracy_ci_high"] == 1.0
    assert all(listed["sft"][k] is None for k in ("accuracy", "accuracy_ci_low",
                                                  "accuracy_ci_high", "accuracy_n",
                                                  "accuracy_basis"))
    # what each accuracy rests on: held-out pairs; a classifier's out-of-fold predictions
    assert listed["reward"]["accuracy_basis"] == "held_out"
    assert listed["classifier"]["accuracy_basis"] == "out_of_fold"


def test_headline_accuracy_of_a_report_with_n_in_its_interval() -> None:
    head = headline_accuracy({"n": 9, "accuracy": 0.5,
                              "accuracy_ci": {"low": 0.2, "high": 0.8, "n": 8}})
    assert head == {"accuracy": 0.5, "accuracy_ci_low": 0.2, "accuracy_ci_high": 0.8,
                    "accuracy_n": 8}
    assert headline_accuracy(None)["accuracy"] is None


class _FixedModel:
    """A stand-in binary classifier: a fixed answer per text."""

    classes_ = ["comply", "refuse"]
    positive_label = "refuse"
    threshold = 0.5

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def predict(self, texts: Sequence[str], contexts: object = None,
                harmful: object = None) -> list[str]:
        return [self.answers[t] for t in texts]


def test_classifier_evaluation_counts_copies_of_a_row_once() -> None:
    refusal = "I can't help with that."
    answers = {refusal: "refuse", **{f"answer {i}": "comply" for i in range(6)}}
    texts = [refusal] * 61 + [f"answer {i}" for i in range(6)]
    labels = ["refuse"] * 61 + ["comply"] * 6
    report = evaluate_classifier(_FixedModel(answers), texts, labels)  # type: ignore[arg-type]
    assert report["n"] == 67 and report["n_distinct"] == 7
    fnr = report["false_negative_rate"]
    assert (fnr["n"], fnr["value"]) == (1, 0.0)
    assert fnr["ci_high"] == pytest.approx(wilson_interval(0, 1)[1])
    assert report["accuracy"] == 1.0
    assert report["accuracy_ci_low"] == pytest.approx(wilson_interval(7, 7)[0])
    assert report["per_class"]["refuse"]["recall"]["n"] == 1
    assert report["confusion"]["refuse"]["refuse"] == 1


def test_copies_with_different_labels_or_contexts_stay_apart() -> None:
    answers = {"same": "refuse", "other": "comply"}
    texts = ["same", "same", "same", "other"]
    labels = ["refuse", "comply", "refuse", "comply"]
    report = evaluate_classifier(_FixedModel(answers), texts, labels)  # type: ignore[arg-type]
    # "same" labelled refuse (twice: one item) and comply (a second item)
    assert report["n_distinct"] == 3 and report["accuracy"] == pytest.approx(2 / 3)
    with_context = evaluate_classifier(_FixedModel(answers), texts,  # type: ignore[arg-type]
                                       labels, contexts=["a", "b", "c", "d"])
    assert with_context["n_distinct"] == 4


def _texts(n: int, copies: int, seed: int = 0) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for i in range(n):
        label = "yes" if (i + seed) % 2 else "no"
        texts += [f"text {seed}-{i}"] * copies
        labels += [label] * copies
    return texts, labels


def test_held_out_headline_accuracy_rests_on_distinct_rows(hash_encoder: None,
                                                           tmp_path: Path) -> None:
    train = LabelledTexts(*_texts(20, 1))
    held = LabelledTexts(*_texts(8, 5, seed=1))  # 40 rows, 8 distinct
    manifest = refresh_classifier(train, tmp_path / "clf", ClassifierConfig(), held_out=held,
                                  data_path="x.jsonl", data_hash="h", label_field="label",
                                  fields={"text": "text"})
    acc = manifest["metrics"]["accuracy"]
    assert manifest["metrics"]["held_out"]["n"] == 40
    assert manifest["metrics"]["held_out"]["n_distinct"] == 8
    assert acc["n"] == 8
    low, high = wilson_interval(acc["successes"], 8)
    assert (acc["ci_low"], acc["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    json.dumps(manifest)
