"""A two-stage head: embedding logistic regression, then a small model over its logit and
the cheap features.

Stage 1 fits an L2 logistic regression on the embedding columns alone. Stage 2 fits
a logistic regression on [logit of stage 1's out-of-fold probabilities, standardised
cheap features] (stacked generalisation, Wolpert 1992). Stage 2 is a Platt-style
calibration of stage 1 (a sigmoid of an affine map of its logit; Platt, 1999) that also
sees the few hand-made features, so a strong low-dimensional signal (such as XSTest's
string-match rule) is not drowned among 384 embedding dimensions, and stage 1's
probabilities are recalibrated on data it did not see.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-5, 1 - 1e-5)
    return np.log(p / (1 - p))


class StackedHead(ClassifierMixin, BaseEstimator):
    """``X = [embedding | cheap features]``; the last ``n_cheap`` columns are the cheap ones."""

    def __init__(self, n_cheap: int = 4, regularisation_c: float = 1.0,
                 class_weight: str | None = "balanced", folds: int = 5, seed: int = 0) -> None:
        self.n_cheap = n_cheap
        self.regularisation_c = regularisation_c
        self.class_weight = class_weight
        self.folds = folds
        self.seed = seed

    def _split(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cut = X.shape[1] - self.n_cheap
        return X[:, :cut], X[:, cut:]

    def _second_stage_inputs(self, proba: np.ndarray, cheap: np.ndarray) -> np.ndarray:
        columns = proba[:, 1:] if proba.shape[1] == 2 else proba
        return np.hstack([_logit(columns), cheap])

    def fit(self, X: np.ndarray, y: np.ndarray,
            sample_weight: np.ndarray | None = None) -> StackedHead:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        embedded, cheap = self._split(np.asarray(X))
        self.classes_ = np.unique(y)
        folds = max(2, min(self.folds, int(np.bincount(np.searchsorted(self.classes_, y)).min())))
        first = LogisticRegression(C=self.regularisation_c, max_iter=5000,
                                   class_weight=self.class_weight)
        weights = {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight)}
        oof = cross_val_predict(first, embedded, y, method="predict_proba", params=weights,
                                cv=StratifiedKFold(folds, shuffle=True, random_state=self.seed))
        self.first_: Any = first.fit(embedded, y, **weights)
        self.second_: Any = LogisticRegression(C=1.0, max_iter=5000,
                                               class_weight=self.class_weight).fit(
            self._second_stage_inputs(oof, cheap), y, **weights)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        embedded, cheap = self._split(np.asarray(X))
        first = self.first_.predict_proba(embedded)
        return np.asarray(self.second_.predict_proba(self._second_stage_inputs(first, cheap)))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(1)])
