"""What every categorical aggregator shares: the fit/predict surface and tie-breaking."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeAlias

import numpy as np
import pandas as pd
from scipy import sparse

from hilt.quality.answers import Answers, FloatArray, IntArray, as_answers, vote_counts

GoldLabels: TypeAlias = Mapping[Any, Any] | pd.Series

# Posteriors closer than this are treated as tied, so that floating-point noise does
# not decide between labels the model considers equally likely.
TIE_TOLERANCE = 1e-12


def class_preference(answers: Answers) -> IntArray:
    """Rank of each class for tie-breaking: most used across the data set first, then
    the class order (sorted labels). Returned as a score where higher wins."""
    usage = np.bincount(answers.label_index, minlength=answers.n_classes)
    # lexsort sorts ascending by the last key first: order by usage desc, then code asc.
    order = np.lexsort((np.arange(answers.n_classes), -usage))
    score = np.empty(answers.n_classes, dtype=np.int64)
    score[order] = np.arange(answers.n_classes)[::-1]
    return score


def most_probable(probas: FloatArray, preference: IntArray) -> IntArray:
    """Row-wise argmax; among (near-)ties the class with the highest ``preference`` wins."""
    if probas.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    best = probas.max(axis=1, keepdims=True)
    tied = probas >= best - TIE_TOLERANCE
    return np.asarray(np.argmax(np.where(tied, preference[None, :] + 1, 0), axis=1),
                      dtype=np.int64)


def answer_matrix(answers: Answers) -> sparse.csr_matrix:
    """Sparse ``n_items × (n_reviewers·n_classes)`` count matrix B.

    ``B[i, w·K + l]`` counts how often reviewer ``w`` gave label ``l`` to item ``i``. Every
    scatter/gather of the EM iterations becomes one sparse product with B or Bᵀ: the
    E-step is ``B @ log π`` and the M-step is ``Bᵀ @ T``.
    """
    columns = answers.reviewer_index * answers.n_classes + answers.label_index
    n_columns = answers.n_reviewers * answers.n_classes
    index_dtype = np.int32 if max(n_columns, answers.n_items) < 2**31 - 1 else np.int64
    matrix = sparse.csr_matrix(
        (np.ones(answers.n_answers), (answers.item_index.astype(index_dtype),
                                      columns.astype(index_dtype))),
        shape=(answers.n_items, n_columns))
    matrix.sum_duplicates()
    return matrix


def softmax_rows(log_scores: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Row-normalised ``exp(log_scores)`` and the row log-normalisers (log-sum-exp)."""
    # Work class-major: reductions over a short row axis are several times slower in
    # numpy than over K long contiguous columns.
    columns = np.ascontiguousarray(log_scores.T)
    shift = columns.max(axis=0)
    columns -= shift
    np.exp(columns, out=columns)
    totals = columns.sum(axis=0)
    columns /= totals
    return np.ascontiguousarray(columns.T), np.log(totals) + shift


class ClassificationAggregator:
    """Base of the categorical aggregators (scikit-learn-like surface).

    After :meth:`fit`: ``items_`` (item ids), ``classes_`` (label set, sorted),
    ``probas_`` (``n_items × n_classes`` posterior or vote share), ``labels_`` (chosen
    label per item) and ``confidence_`` (the chosen label's probability).
    """

    items_: np.ndarray
    classes_: np.ndarray
    probas_: FloatArray
    labels_: np.ndarray
    confidence_: FloatArray

    def fit(self, answers: Answers | pd.DataFrame, gold: GoldLabels | None = None) -> Self:
        encoded = as_answers(answers)
        if gold is not None:
            encoded = encoded.with_classes(list(gold.values()) if isinstance(gold, Mapping)
                                           else gold.tolist())
        gold_items, gold_classes = (encoded.encode_gold(gold) if gold is not None
                                    else (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        probas = self._fit_probas(encoded, gold_items, gold_classes)
        chosen = most_probable(probas, class_preference(encoded))
        self.items_ = encoded.items
        self.classes_ = encoded.classes
        self.probas_ = probas
        self.labels_ = encoded.classes[chosen] if encoded.n_items else encoded.classes[:0]
        self.confidence_ = (probas[np.arange(encoded.n_items), chosen] if encoded.n_items
                            else np.zeros(0))
        return self

    def _fit_probas(self, answers: Answers, gold_items: IntArray,
                    gold_classes: IntArray) -> FloatArray:
        raise NotImplementedError

    def fit_predict(self, answers: Answers | pd.DataFrame,
                    gold: GoldLabels | None = None) -> pd.Series:
        """Fit, then return the label per item (Series indexed by item)."""
        self.fit(answers, gold)
        return pd.Series(self.labels_, index=pd.Index(self.items_, name="item"), name="label")

    def fit_predict_proba(self, answers: Answers | pd.DataFrame,
                          gold: GoldLabels | None = None) -> pd.DataFrame:
        """Fit, then return the ``item × class`` probability table."""
        self.fit(answers, gold)
        return pd.DataFrame(self.probas_, index=pd.Index(self.items_, name="item"),
                            columns=pd.Index(self.classes_, name="label"))


def clamp_gold(probas: FloatArray, gold_items: IntArray, gold_classes: IntArray) -> None:
    """Set the rows of gold items to the one-hot vector of their known label (in place)."""
    if gold_items.size:
        probas[gold_items] = 0.0
        probas[gold_items, gold_classes] = 1.0


def vote_shares(answers: Answers) -> FloatArray:
    """Each item's share of votes per class (the majority-vote posterior)."""
    counts = vote_counts(answers)
    totals = counts.sum(axis=1, keepdims=True)
    return counts / np.where(totals > 0, totals, 1.0)
