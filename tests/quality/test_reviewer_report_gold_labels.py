"""A gold answer is right when it gives the gold label, whatever type each side was
read as: a gold column with gaps reads as floats while the answers read as integers."""

from __future__ import annotations

import pandas as pd
import pytest

from hilt.quality import reviewer_report
from hilt.quality.reviewers import same_label


def test_integer_answers_against_a_float_gold_column_count_as_right() -> None:
    # The non-gold rows leave gaps in gold_label, so pandas reads it as 1.0, 2.0, ...
    frame = pd.DataFrame({
        "reviewer": ["r1"] * 12, "item": [f"g{i}" for i in range(12)],
        "label": [i % 3 for i in range(12)],
        "is_gold": [True] * 10 + [False] * 2,
        "gold_label": [float(i % 3) for i in range(10)] + [None, None],
        "timestamp": range(12)})
    assert frame["gold_label"].dtype == "float64"
    (row,) = reviewer_report(frame.itertuples(index=False))
    assert (row.gold_correct, row.n_gold, row.gold_accuracy) == (10, 10, 1.0)
    assert row.status == "calibrated"


@pytest.mark.parametrize(("label", "gold", "same"), [
    (1, 1.0, True), ("1", 1.0, True), (2.5, "2.5", True), (1, "1", True),
    ("safe", "safe", True), ("1", "1.0", False), ("1", 2, False), ("a", 1, False),
    (True, 1, False), (1, 2.0, False),
])
def test_same_label(label: object, gold: object, same: bool) -> None:
    assert same_label(label, gold) is same
