"""Per-item median of ratings on a numeric scale."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from hilt.quality._scale import ScaleAggregator, numeric_ratings, scale_step, share_within
from hilt.quality.answers import Answers, as_answers


class MedianRating(ScaleAggregator):
    r"""The median of each item's ratings: :math:`\hat\mu_i = \operatorname{median}_w x_{iw}`.

    Robust to a minority of extreme ratings (breakdown point 50%). With an even number of
    ratings the median is the mean of the two middle ratings. Computed for all items at
    once from one ``lexsort`` by (item, rating) — no loop over items.
    """

    def fit(self, answers: Answers | pd.DataFrame) -> Self:
        encoded = as_answers(answers)
        ratings = numeric_ratings(encoded)
        n_items = encoded.n_items
        order = np.lexsort((ratings, encoded.item_index))
        sorted_ratings = ratings[order]
        counts = np.bincount(encoded.item_index, minlength=n_items)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])) if n_items else counts
        lower = sorted_ratings[starts + (counts - 1) // 2] if n_items else np.zeros(0)
        upper = sorted_ratings[starts + counts // 2] if n_items else np.zeros(0)
        self.items_ = encoded.items
        self.values_ = (lower + upper) / 2.0
        self.confidence_ = share_within(ratings, encoded.item_index, self.values_,
                                        scale_step(encoded) / 2.0, n_items)
        return self
