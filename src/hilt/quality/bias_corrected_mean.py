"""Mean rating after removing each reviewer's additive bias."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import linalg

from hilt.quality._scale import ScaleAggregator, numeric_ratings, scale_step, share_within
from hilt.quality.answers import Answers, FloatArray, as_answers


class BiasCorrectedMean(ScaleAggregator):
    r"""Item means corrected for lenient or harsh reviewers (additive bias model).

    .. math::

        x_{iw} = \mu_i + b_w + \varepsilon_{iw}, \qquad
        \min_{\mu, b} \sum_{(i,w)} (x_{iw} - \mu_i - b_w)^2 + \lambda \sum_w b_w^2

    The item means are eliminated (:math:`\mu_i = \operatorname{mean}_w(x_{iw} - b_w)`)
    and the remaining reviewers × reviewers system for the biases, which is symmetric
    positive definite for λ > 0,

    .. math::

        \bigl(\operatorname{diag}(n_w + \lambda) - A^\top D^{-1} A\bigr)\, b
            = t - A^\top D^{-1} s

    (``A`` the sparse items × reviewers answer-count matrix, ``D`` the answers per item,
    ``s``/``t`` the rating sums per item/reviewer) is solved by conjugate gradients with
    sparse products only. The ridge term λ (``bias_shrinkage``, in "pseudo-answers")
    shrinks the bias of reviewers with few answers towards 0 and makes the split between
    :math:`\mu` and :math:`b` unique.

    Fitted: ``values_`` (:math:`\mu_i`), ``reviewers_``, ``reviewer_bias_``
    (:math:`b_w`), ``std_error_`` (pooled residual standard deviation / √n_i),
    ``n_iter_``, ``converged_``.

    Reference: the additive "reviewer effect" model of two-way ANOVA; for rating
    aggregation see e.g. N. B. Shah et al. (2018), "Design and analysis of the NIPS 2016
    review process", JMLR 19(49).
    """

    def __init__(self, bias_shrinkage: float = 1.0, max_iter: int = 1000,
                 tol: float = 1e-10) -> None:
        if bias_shrinkage <= 0:
            raise ValueError("bias_shrinkage must be positive")
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
        inverse_item = np.divide(1.0, per_item, out=np.zeros(n_items), where=per_item > 0)
        counts = sparse.csr_matrix((np.ones(encoded.n_answers), (items, reviewers)),
                                   shape=(n_items, n_reviewers))
        counts_t = counts.T.tocsr()
        item_sums = np.bincount(items, weights=ratings, minlength=n_items)
        reviewer_sums = np.bincount(reviewers, weights=ratings, minlength=n_reviewers)
        diagonal = per_reviewer + self.bias_shrinkage

        def schur(bias: FloatArray) -> FloatArray:
            return np.asarray(diagonal * bias - counts_t @ (inverse_item * (counts @ bias)))

        rhs = reviewer_sums - counts_t @ (inverse_item * item_sums)
        self.n_iter_ = 0

        def count(_: FloatArray) -> None:
            self.n_iter_ += 1

        if n_reviewers:
            operator = linalg.LinearOperator((n_reviewers, n_reviewers), matvec=schur,
                                             dtype=np.float64)
            solution, info = linalg.cg(operator, rhs, rtol=self.tol, atol=0.0,
                                       maxiter=self.max_iter, callback=count)
            bias = np.asarray(solution, dtype=np.float64)
            self.converged_ = info == 0
        else:
            bias, self.converged_ = np.zeros(0), True
        means = inverse_item * (item_sums - counts @ bias)

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
        self.std_error_ = (sigma * np.sqrt(inverse_item) if np.isfinite(sigma)
                           else np.full(n_items, np.inf))
        self.confidence_ = share_within(corrected, items, means, scale_step(encoded) / 2.0,
                                        n_items)
        return self
