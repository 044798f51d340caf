"""Aggregating labels that are not text: gold labels of another type, new gold labels and
mixed label columns give the documented result or an InputError, never a NumPy crash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hilt.errors import InputError
from hilt.quality import MACE, Answers, DawidSkene, MajorityVote, OneCoinDawidSkene

CATEGORICAL = (MajorityVote, DawidSkene, OneCoinDawidSkene, MACE)


def _duck(shared_data: Path) -> pd.DataFrame:
    # read_csv gives int64 items and labels (0/1), as in the documented example.
    return pd.read_csv(shared_data / "crowd" / "duck" / "answer.csv").rename(
        columns={"question": "item", "worker": "reviewer", "answer": "label"})


@pytest.mark.parametrize("model_class", CATEGORICAL)
def test_a_text_gold_label_matches_numeric_labels(shared_data: Path, model_class: type
                                                  ) -> None:
    answers = _duck(shared_data)
    assert answers["label"].dtype.kind == "i"
    item = answers["item"].iloc[0]
    as_text = model_class().fit(answers, gold={item: "1"})
    as_number = model_class().fit(answers, gold={item: 1})
    by_text_id = model_class().fit(answers, gold={str(item): "1"})
    assert list(as_text.classes_) == [0, 1]
    np.testing.assert_array_equal(as_text.probas_, as_number.probas_)
    np.testing.assert_array_equal(as_text.probas_, by_text_id.probas_)
    position = list(as_text.items_).index(item)
    assert as_text.labels_[position] == 1 and as_text.confidence_[position] == 1.0


@pytest.mark.parametrize("model_class", CATEGORICAL)
def test_a_new_gold_label_turns_the_classes_into_text(shared_data: Path, model_class: type
                                                      ) -> None:
    answers = _duck(shared_data)
    item = answers["item"].iloc[0]
    model = model_class().fit(answers, gold={item: "unsafe"})
    assert list(model.classes_) == ["0", "1", "unsafe"]
    position = list(model.items_).index(item)
    assert model.labels_[position] == "unsafe" and model.confidence_[position] == 1.0
    # The same as fitting text labels in the first place.
    text = model_class().fit(answers.assign(label=answers["label"].astype(str)),
                             gold={item: "unsafe"})
    np.testing.assert_array_equal(model.probas_, text.probas_)
    assert list(model.labels_) == list(text.labels_)


def test_mixed_label_column_becomes_text() -> None:
    frame = pd.DataFrame({"item": ["a", "a", "b", "b"], "reviewer": ["x", "y", "x", "y"],
                          "label": pd.Series([1, "1", "safe", 1], dtype=object)})
    answers = Answers.from_frame(frame)
    assert list(answers.classes) == ["1", "safe"]
    # b is a tie; the label used most often overall ("1", three times) wins.
    assert MajorityVote().fit_predict(frame).to_dict() == {"a": "1", "b": "1"}


def test_labels_outside_the_classes_are_input_errors() -> None:
    answers = Answers.from_columns(["a", "b"], ["x", "x"], [0, 1], classes=["0", "1"])
    assert list(answers.label_index) == [0, 1]
    with pytest.raises(InputError, match="not one of the given classes"):
        Answers.from_columns(["a"], ["x"], [2], classes=[0, 1])
    with pytest.raises(InputError, match="'unsafe' of item 'a' is not among the classes"):
        answers.encode_gold({"a": "unsafe"})
    with pytest.raises(InputError, match="gold label is missing"):
        DawidSkene().fit(pd.DataFrame({"item": ["a"], "reviewer": ["x"], "label": [1]}),
                         gold={"a": None})
