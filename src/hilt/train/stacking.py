"""A two-stage head: embedding logistic regression, then a small model over its logit and
the cheap features.

Stage 1 fits an L2 logistic regression on the embedding columns alone. Stage 2 fits
a logistic regression on [logit of stage 1's out-of-fold probabilities, standardised
cheap features] (stacked generalisation, Wolpert 1992). Stage 2 is a Platt-style
calibration of stage 1 (a sigmoid of an affine map of its logit; Platt, 1999) that also
sees the few hand-made features, so a strong low-dimensional signal (such as XSTest's
string-match rule) is not drowned among 384 embedding dimensions, and stage 1's
probabilities are recalibrated on data it did not see. Both stages are fitted with
``class_weight`` (balanced by default), so ``predict_proba`` is calibrated to a 50/50
prior of the classes, not to the training prevalence.
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

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> StackedHead:
        """``groups`` (e.g. a hash of each text) keeps a group's rows in one inner fold, so
        stage 2 never sees a logit of a row whose copy stage 1 trained on."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import (
            StratifiedGroupKFold,
            StratifiedKFold,
            cross_val_predict,
        )

        embedded, cheap = self._split(np.asarray(X))
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        first = LogisticRegression(C=self.regularisation_c, max_iter=5000,
                                   class_weight=self.class_weight)
        weights = {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight)}
        cv: Any
        split_groups = None if groups is None else np.asarray(groups)
        per_group_class = (0 if split_groups is None else
                           min(len(set(split_groups[y == c].tolist())) for c in self.classes_))
        per_class = int(np.bincount(np.searchsorted(self.classes_, y)).min())
        if per_group_class >= 2:
            folds = min(self.folds, per_group_class)
            cv = StratifiedGroupKFold(folds, shuffle=True, random_state=self.seed)
        else:
            # Without groups, or with a class of one distinct text (grouped folds would
            # leave it out of a training fold entirely), fall back to row folds.
            split_groups = None
            folds = max(2, min(self.folds, per_class))
            cv = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
        if per_class < 2:
            # A class with a single row (an outer out-of-fold split of tiny data can leave
            # one): no split trains stage 1 on it and also scores it, so stage 2 reads
            # stage 1's in-sample probabilities instead.
            self.first_: Any = first.fit(embedded, y, **weights)
            oof = self.first_.predict_proba(embedded)
        else:
            oof = cross_val_predict(first, embedded, y, method="predict_proba",
                                    params=weights, cv=cv, groups=split_groups)
            self.first_ = first.fit(embedded, y, **weights)
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


class CalibratedLinearHead(ClassifierMixin, BaseEstimator):
    """The linear head: a logistic regression calibrated by ``CalibratedClassifierCV``
    whose number of folds is chosen when it is fitted, from the class counts of the rows
    it is given (as :class:`StackedHead` does). The outer, grouped folds of the
    out-of-fold estimate hold out whole groups of copies, so a training fold may have
    far fewer rows of a class than the whole data suggests."""

    def __init__(self, regularisation_c: float = 1.0, class_weight: str | None = "balanced",
                 method: str = "sigmoid", folds: int = 5) -> None:
        self.regularisation_c = regularisation_c
        self.class_weight = class_weight
        self.method = method
        self.folds = folds

    def fit(self, X: np.ndarray, y: np.ndarray,
            sample_weight: np.ndarray | None = None) -> CalibratedLinearHead:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(y)
        self.classes_ = np.unique(y)
        base = LogisticRegression(C=self.regularisation_c, max_iter=5000,
                                  class_weight=self.class_weight)
        per_class = int(np.bincount(np.searchsorted(self.classes_, y)).min())
        weights = {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight)}
        if per_class < 2:
            # Calibration folds need two rows of every class; with one (a grouped
            # training fold of a class with few distinct texts) the plain regression's
            # probabilities are the best available.
            self.model_: Any = base.fit(X, y, **weights)
        else:
            self.model_ = CalibratedClassifierCV(
                base, method=self.method, cv=max(2, min(self.folds, per_class))
            ).fit(X, y, **weights)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.predict_proba(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(1)])
