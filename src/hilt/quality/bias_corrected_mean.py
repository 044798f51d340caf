"""Mean rating after removing each reviewer's additive bias."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from hilt.quality._scale import ScaleAggregator, numeric_ratings, scale_step, share_within
from hilt.quality.answers import Answers, FloatArray, as_answers


class BiasCorrectedMean(ScaleAggregator):
    r"""Item means corrected for lenient or harsh reviewers (additive bias model).

    .. math::

        x_{iw} = \mu_i + b_w + \varepsilon_{iw}, \qquad
        \min_{\mu, b} \sum_{(i,w)} (x_{iw} - \mu_i - b_w)^2 + \lambda \sum_w b_w^2

    solved by alternating exact updates (block coordinate descent on a convex quadratic,
    so it converges): :math:`\mu_i = \operatorname{mean}_w (x_{iw} - b_w)` and
    :math:`b_w = \sum_i (x_{iw} - \mu_i) / (n_w + \lambda)`. The ridge term λ
    (``bias_shrinkage``, in "pseudo-answers") shrinks the bias of reviewers with few
    answers towards 0 and makes the split between :math:`\mu` and :math:`b` unique.
    Each update is two ``np.bincount`` scatters over the answers.

    Fitted: ``values_`` (:math:`\mu_i`), ``reviewers_``, ``reviewer_bias_``
    (:math:`b_w`), ``std_error_`` (pooled residual standard deviation / √n_i),
    ``n_iter_``, ``converged_``.

    Reference: the additive "reviewer effect" model of two-way ANOVA; for rating
    aggregation see e.g. N. B. Shah et al. (2018), "Design and analysis of the NIPS 2016
    review process", JMLR 19(49).
    """

    def __init__(self, bias_shrinkage: float = 1.0, max_iter: int = 200,
                 tol: float = 1e-9) -> None:
        if bias_shrinkage < 0:
            raise ValueError("bias_shrinkage must be non-negative")
        self.bias_shrinkage = bias_shrinkage
        self.max_iter = max_iter
        self.tol = tol

    reviewers_: np.ndarray
    reviewer_bias_: FloatArray
    std_error_: FloatArray
    n_iter_: int
    converged_: bool

    def fit(self, answers: Answers | pd.DataFrame) -> Self:
        encoded = as_answers(answers)
        ratings = numeric_ratings(encoded)
        items, reviewers = encoded.item_index, encoded.reviewer_index
        n_items, n_reviewers = encoded.n_items, encoded.n_reviewers
        per_item = np.bincount(items, minlength=n_items).astype(np.float64)
        per_reviewer = np.bincount(reviewers, minlength=n_reviewers).astype(np.float64)
        safe_item = np.where(per_item > 0, per_item, 1.0)
        reviewer_denominator = per_reviewer + self.bias_shrinkage
        safe_reviewer = np.where(reviewer_denominator > 0, reviewer_denominator, 1.0)
        bias: FloatArray = np.zeros(n_reviewers)
        means: FloatArray = np.bincount(items, weights=ratings, minlength=n_items) / safe_item
        self.n_iter_, self.converged_ = 0, True
        for iteration in range(1, self.max_iter + 1):
            self.n_iter_ = iteration
            new_bias = np.bincount(reviewers, weights=ratings - means[items],
                                   minlength=n_reviewers) / safe_reviewer
            new_means = np.bincount(items, weights=ratings - new_bias[reviewers],
                                    minlength=n_items) / safe_item
            change = max(np.abs(new_bias - bias).max(initial=0.0),
                         np.abs(new_means - means).max(initial=0.0))
            bias, means = new_bias, new_means
            if change < self.tol:
                break
        else:
            self.converged_ = self.max_iter == 0

        corrected = ratings - bias[reviewers]
        residual = corrected - means[items]
        dof = encoded.n_answers - n_items - n_reviewers
        sigma = float(np.sqrt((residual ** 2).sum() / dof)) if dof > 0 else float("nan")
        self.items_ = encoded.items
        self.values_ = means
        self.reviewers_ = encoded.reviewers
        self.reviewer_bias_ = bias
        # Too few answers to estimate the noise: the standard error is reported as inf
        # (unknown), never NaN.
        self.std_error_ = (sigma / np.sqrt(safe_item) if np.isfinite(sigma)
                           else np.full(n_items, np.inf))
        self.confidence_ = share_within(corrected, items, means, scale_step(encoded) / 2.0,
                                        n_items)
        return self
