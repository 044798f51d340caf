"""What the aggregators of ratings on a numeric scale share."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from hilt.quality.answers import Answers, FloatArray, as_answers


def numeric_ratings(answers: Answers) -> FloatArray:
    """The numeric value of each answer; the labels must all be numbers."""
    try:
        values = np.asarray(answers.classes, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("ratings on a scale must be numbers") from exc
    if values.size and not np.isfinite(values).all():
        raise ValueError("ratings on a scale must be finite numbers")
    return values[answers.label_index]


def scale_step(answers: Answers) -> float:
    """Smallest gap between distinct rating values (1.0 when there is only one value)."""
    values = np.unique(np.asarray(answers.classes, dtype=np.float64))
    gaps = np.diff(values)
    return float(gaps.min()) if gaps.size else 1.0


def share_within(ratings: FloatArray, item_index: np.ndarray, centre: FloatArray,
                 half_width: float, n_items: int) -> FloatArray:
    """Per item, the share of its ratings within ±half_width of ``centre``."""
    close = np.abs(ratings - centre[item_index]) <= half_width + 1e-12
    hits = np.bincount(item_index, weights=close.astype(np.float64), minlength=n_items)
    totals = np.bincount(item_index, minlength=n_items)
    return np.divide(hits, totals, out=np.zeros(n_items), where=totals > 0)


class ScaleAggregator:
    """Base of the numeric aggregators: after :meth:`fit`, ``items_``, ``values_`` (one
    aggregate per item) and ``confidence_`` (share of the item's ratings — bias-corrected
    where the method corrects bias — within half a scale step of the aggregate)."""

    items_: np.ndarray
    values_: FloatArray
    confidence_: FloatArray

    def fit(self, answers: Answers | pd.DataFrame) -> Self:
        raise NotImplementedError

    def fit_predict(self, answers: Answers | pd.DataFrame) -> pd.Series:
        """Fit, then return the aggregate per item (Series indexed by item)."""
        self.fit(as_answers(answers))
        return pd.Series(self.values_, index=pd.Index(self.items_, name="item"), name="value")
