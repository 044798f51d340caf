"""Linear Bradley–Terry experts that the default reward model adds to its tuned part.

A linear BT model ``r(y) = wᵀ φ(y)`` is fitted on feature differences
``φ(y_c) − φ(y_r)``: a logistic regression without intercept on the symmetrised set
{(d, 1), (−d, 0)}, its L2 penalty chosen by 5-fold cross-validation on the training
pairs (both orientations of a pair stay in one fold, so no pair is scored by a model
that saw its mirror image).

Lexical expert (``RewardConfig.lexical_expert``): ``φ`` is the TF-IDF vector of the
reply's character n-grams (2–5, inside word boundaries, sublinear term frequency).
It reads the words a reply uses (and their spellings and inflections) over the whole
reply, while the encoder reads a 128-token view of the exchange; their errors are
partly independent, so their sum (a product of experts) ranks better than either
(measurements in docs/train.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LEXICAL_FILE = "lexical_expert.npz"
# Shared with the frozen expert: dense embedding differences need strong penalties.
DENSE_PENALTIES = (0.01, 0.03, 0.1, 0.3, 1.0)
# Sparse TF-IDF differences are weaker per feature; cross-validation on HH harmless
# training pairs was flat over 0.1–10.
LEXICAL_PENALTIES = (0.3, 1.0, 3.0, 10.0)
_VECTORIZER = {"analyzer": "char_wb", "ngram_range": (2, 5), "sublinear_tf": True,
               "lowercase": True}
_MIN_DF = 3


def _stack(a: Any, b: Any) -> Any:
    if hasattr(a, "tocsr"):
        from scipy.sparse import vstack

        return vstack([a, b]).tocsr()
    return np.vstack([a, b])


def fit_linear_bradley_terry(differences: Any, seed: int = 0,
                             penalties: Sequence[float] = DENSE_PENALTIES) -> np.ndarray:
    """w maximising Σ log σ(wᵀ(φ_c − φ_r)) with an L2 penalty chosen by 5-fold CV.

    ``differences`` is a dense array or a scipy sparse matrix, one row per pair;
    ``penalties`` are the candidate inverse penalties (scikit-learn's ``C``)."""
    from sklearn.linear_model import LogisticRegression

    n = differences.shape[0]
    folds = np.random.default_rng(seed).permutation(n) % 5

    def fit(rows: Any, c: float) -> np.ndarray:
        k = rows.shape[0]
        model = LogisticRegression(C=c, fit_intercept=False, max_iter=3000).fit(
            _stack(rows, -rows), np.r_[np.ones(k), np.zeros(k)])
        return np.asarray(model.coef_[0])

    best_c, best_acc = penalties[0], -1.0
    for c in penalties:
        correct = 0
        for k in range(5):
            w = fit(differences[folds != k], c)
            correct += int((np.asarray(differences[folds == k] @ w) > 0).sum())
        if correct / n > best_acc:
            best_c, best_acc = c, correct / n
    return fit(differences, best_c)


@dataclass
class LexicalExpert:
    """``r(y) = wᵀ tfidf(y)`` over the reply's character n-grams."""

    terms: np.ndarray  # the n-gram of each feature, in column order
    idf: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._vectorizer: Any = None
        if not len(self.terms):  # no n-gram was frequent enough: the expert scores 0
            return
        self._vectorizer = TfidfVectorizer(
            **_VECTORIZER, vocabulary={str(t): i for i, t in enumerate(self.terms)})
        self._vectorizer.idf_ = self.idf

    def score(self, responses: Sequence[str]) -> np.ndarray:
        if self._vectorizer is None or not responses:
            return np.zeros(len(responses))
        return np.asarray(self._vectorizer.transform(list(responses)) @ self.weights,
                          dtype=np.float64)

    def save(self, folder: Path) -> None:
        np.savez(folder / LEXICAL_FILE, terms=self.terms, idf=self.idf, weights=self.weights)

    @classmethod
    def load(cls, folder: Path) -> LexicalExpert:
        with np.load(folder / LEXICAL_FILE, allow_pickle=False) as saved:
            return cls(saved["terms"], saved["idf"], saved["weights"])


def fit_lexical_expert(chosen: Sequence[str], rejected: Sequence[str],
                       seed: int = 0) -> LexicalExpert:
    """Fit the lexical expert on aligned chosen and rejected replies. The vocabulary and
    IDF come from all training replies (labels are not used for them); n-grams in
    fewer than three replies are dropped."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not chosen:
        raise ValueError("the lexical expert needs at least one training pair")
    vectorizer = TfidfVectorizer(**_VECTORIZER, min_df=_MIN_DF)
    try:
        matrix = vectorizer.fit_transform(list(chosen) + list(rejected)).tocsr()
    except ValueError:  # no n-gram in three replies (tiny or empty data)
        return LexicalExpert(np.array([], dtype=str), np.zeros(0), np.zeros(0))
    n = len(chosen)
    weights = fit_linear_bradley_terry(matrix[:n] - matrix[n:], seed, LEXICAL_PENALTIES)
    vocabulary = vectorizer.vocabulary_
    terms = np.array(sorted(vocabulary, key=vocabulary.__getitem__), dtype=str)
    return LexicalExpert(terms, np.asarray(vectorizer.idf_), weights)
