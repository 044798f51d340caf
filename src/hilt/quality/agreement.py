"""Chance-corrected agreement between reviewers: percent agreement, Cohen's and Fleiss' kappa.

Each metric is written twice over the same arithmetic: a plain function with the
signature people know (``cohen_kappa(a, b)``, ``fleiss_kappa(table)``) and a *weighted
statistic* object that evaluates the metric for any vector of item weights. The latter
lets the bootstrap (:mod:`hilt.quality.bootstrap`) resample items by drawing integer
weights instead of copying data: one resample is a few ``bincount``/matrix products.

Undefined values: when a metric's denominator is zero — no item rated twice, or every
rating in one category so chance agreement is already perfect — the value is ``nan``
(and :func:`hilt.quality.measure_agreement` explains why in ``note``). No value is
invented for those cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from hilt.quality.answers import FloatArray, IntArray, numeric_order

KappaWeights = Literal["linear", "quadratic"] | None
# reviewers × items; gaps as nan or None (a list of lists with None is fine)
ReliabilityData = npt.ArrayLike | Sequence[Sequence[object]]


class WeightedStatistic(Protocol):
    """A statistic over ``n_units`` items that can be re-evaluated with item weights."""

    n_units: int

    def __call__(self, unit_weights: FloatArray) -> float: ...


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


def disagreement_weights(n_classes: int, weights: KappaWeights) -> FloatArray:
    """Cohen's disagreement weights over class positions: 0/1, ``|i-j|`` or ``(i-j)²``."""
    positions = np.arange(n_classes, dtype=np.float64)
    distance = np.abs(positions[:, None] - positions[None, :])
    if weights is None:
        return (distance > 0).astype(np.float64)
    if weights == "linear":
        return distance
    if weights == "quadratic":
        return distance ** 2
    raise ValueError(f"unknown kappa weights {weights!r}; use None, 'linear' or 'quadratic'")


class PercentAgreementStatistic:
    r"""Mean over items of the share of agreeing reviewer pairs.

    .. math::
        P_o = \frac{1}{|U|} \sum_{u \in U} \frac{\sum_c n_{uc}(n_{uc}-1)}{m_u(m_u-1)}

    over the items ``U`` rated at least twice (for two reviewers: the share of items they
    labelled the same).
    """

    def __init__(self, item_index: IntArray, label_index: IntArray, n_items: int,
                 n_classes: int) -> None:
        counts = np.bincount(item_index * n_classes + label_index,
                             minlength=n_items * n_classes).reshape(n_items, n_classes)
        ratings = counts.sum(axis=1)
        keep = ratings >= 2
        pairs = ratings[keep] * (ratings[keep] - 1.0)
        self.item_agreement = (counts[keep] * (counts[keep] - 1.0)).sum(axis=1) / pairs
        self.n_units = int(keep.sum())

    def __call__(self, unit_weights: FloatArray) -> float:
        return _ratio(float(unit_weights @ self.item_agreement), float(unit_weights.sum()))


class CohenKappaStatistic:
    r"""Cohen's kappa of two reviewers over their common items, optionally weighted.

    With the confusion matrix :math:`C` of the two reviewers, its chance expectation
    :math:`E = C\mathbf{1}\,\mathbf{1}^\top C / n` and disagreement weights :math:`w`
    (0/1, linear ``|i-j|`` or quadratic ``(i-j)²`` over the label positions):

    .. math:: \kappa = 1 - \frac{\sum_{ij} w_{ij} C_{ij}}{\sum_{ij} w_{ij} E_{ij}}

    Reference: J. Cohen (1960), Educ. Psychol. Meas. 20:37–46; weighted: J. Cohen (1968),
    Psychol. Bull. 70:213–220.
    """

    def __init__(self, labels_a: IntArray, labels_b: IntArray, n_classes: int,
                 weights: KappaWeights = None) -> None:
        self.cell = np.asarray(labels_a, np.int64) * n_classes + np.asarray(labels_b, np.int64)
        self.n_classes = n_classes
        self.disagreement = disagreement_weights(n_classes, weights)
        self.n_units = int(self.cell.shape[0])

    def __call__(self, unit_weights: FloatArray) -> float:
        k = self.n_classes
        confusion = np.bincount(self.cell, weights=unit_weights, minlength=k * k).reshape(k, k)
        total = confusion.sum()
        if total <= 0:
            return float("nan")
        expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / total
        expected_disagreement = float((self.disagreement * expected).sum())
        if expected_disagreement <= 0:
            return float("nan")
        return 1.0 - float((self.disagreement * confusion).sum()) / expected_disagreement


class FleissKappaStatistic:
    r"""Fleiss' kappa from an ``items × categories`` count table.

    .. math::
        P_u = \frac{\sum_c n_{uc}^2 - m_u}{m_u(m_u-1)},\quad
        \bar P = \operatorname{mean}_u P_u,\quad
        p_c = \frac{\sum_u n_{uc}}{\sum_u m_u},\quad
        \kappa = \frac{\bar P - \sum_c p_c^2}{1 - \sum_c p_c^2}

    Fleiss (1971) assumes the same number of ratings ``m`` per item; then this is exactly
    his formula. With varying ``m_u`` each item's agreement uses its own ``m_u`` and the
    category shares are pooled over all ratings. Items with fewer than two ratings are
    dropped (they carry no agreement information).

    Reference: J. L. Fleiss (1971), "Measuring nominal scale agreement among many
    raters", Psychol. Bull. 76(5):378–382.
    """

    def __init__(self, table: npt.ArrayLike) -> None:
        counts = np.asarray(table, dtype=np.float64)
        if counts.ndim != 2:
            raise ValueError("the Fleiss table must be items × categories")
        if not (np.isfinite(counts) & (counts >= 0)).all():
            # A NaN row would be dropped as "fewer than two ratings" and a negative count
            # would enter the sums: either way a wrong value with no warning.
            raise ValueError("the Fleiss table must hold finite counts of at least 0")
        ratings = counts.sum(axis=1)
        keep = ratings >= 2
        self.counts = counts[keep]
        self.ratings = ratings[keep]
        self.item_agreement = (((self.counts ** 2).sum(axis=1) - self.ratings)
                               / (self.ratings * (self.ratings - 1.0)))
        self.n_units = int(keep.sum())

    def __call__(self, unit_weights: FloatArray) -> float:
        weight_total = float(unit_weights.sum())
        rating_total = float(unit_weights @ self.ratings)
        if weight_total <= 0 or rating_total <= 0:
            return float("nan")
        observed = float(unit_weights @ self.item_agreement) / weight_total
        shares = (unit_weights @ self.counts) / rating_total
        chance = float((shares ** 2).sum())
        return _ratio(observed - chance, 1.0 - chance)


def _present(values: np.ndarray) -> npt.NDArray[np.bool_]:
    """Where ``values`` holds a rating: not ``nan``/``None``, nor the text ``"nan"``."""
    if values.dtype.kind == "f":
        return np.asarray(~np.isnan(values), dtype=bool)
    if values.dtype.kind in {"i", "u", "b"}:
        return np.ones(values.shape, dtype=bool)
    present = ~np.asarray(pd.isna(values), dtype=bool)
    if values.dtype.kind in {"U", "S", "O"}:
        present &= values.astype(str) != "nan"
    return present


def reliability_to_long(reliability_data: ReliabilityData) -> tuple[IntArray, np.ndarray]:
    """``reviewers × items`` data with ``nan``/``None`` gaps → (item index, value) per rating.

    The ratings come out grouped by item. Strings ``"nan"`` count as missing too, because
    ``np.asarray`` turns ``nan`` into ``"nan"`` in a string array (the convention of the
    ``krippendorff`` package).
    """
    data = np.asarray(reliability_data)
    if data.ndim != 2:
        raise ValueError("reliability data must be reviewers × items")
    by_item = data.T
    present = _present(by_item)
    per_item = present.sum(axis=1)
    items = np.repeat(np.arange(by_item.shape[0], dtype=np.int64), per_item)
    return items, by_item[present]


def percent_agreement(reliability_data: ReliabilityData) -> float:
    """Share of agreeing reviewer pairs per item, averaged over items rated at least twice.

    ``reliability_data`` is ``reviewers × items`` with ``nan`` (or ``None``) for missing
    ratings, the layout of the ``krippendorff`` package. Returns ``nan`` when no item has
    two ratings.
    """
    items, values = reliability_to_long(reliability_data)
    codes, domain = pd.factorize(values)
    statistic = PercentAgreementStatistic(items, np.asarray(codes, np.int64),
                                          np.asarray(reliability_data).shape[1], len(domain))
    return statistic(np.ones(statistic.n_units))


def cohen_kappa(rater_a: npt.ArrayLike, rater_b: npt.ArrayLike, weights: KappaWeights = None,
                labels: npt.ArrayLike | None = None) -> float:
    """Cohen's kappa of two equally long label sequences.

    ``weights``: None, ``'linear'`` or ``'quadratic'``; weighted kappa uses the positions
    of the labels in ``labels`` (default: the sorted distinct labels, like scikit-learn).
    Without ``labels``, weighted kappa orders labels that read as numbers by number
    (``"9" < "10"``) and refuses other text labels (``ValueError``): their alphabetical
    order says nothing about distance.

    A missing rating (``nan`` or ``None``, the gap of the ``reviewers × items`` layout)
    leaves its item out: kappa is computed over the items both raters labelled, as for
    long-format answers. A gap is never a label of its own.
    """
    first, second = np.asarray(rater_a), np.asarray(rater_b)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError("both raters must label the same items")
    both = _present(first) & _present(second)
    if not both.all():
        # Without this, nan would be one more category (and None would not sort).
        first, second = first[both], second[both]
    domain = (np.unique(np.concatenate([first, second])) if labels is None
              else np.asarray(labels))
    if weights is not None and labels is None:
        by_number = numeric_order(domain)
        if by_number is None:
            raise ValueError("weighted kappa of labels that are not numbers needs labels= "
                             "to give their order")
        domain = domain[by_number]
    index = pd.Index(domain)
    codes_a, codes_b = index.get_indexer(first), index.get_indexer(second)
    if (codes_a < 0).any() or (codes_b < 0).any():
        raise ValueError("a rating is not among the given labels")
    statistic = CohenKappaStatistic(codes_a.astype(np.int64), codes_b.astype(np.int64),
                                    len(domain), weights)
    return statistic(np.ones(statistic.n_units))


def fleiss_kappa(table: npt.ArrayLike) -> float:
    """Fleiss' kappa of an ``items × categories`` count table (see
    :class:`FleissKappaStatistic`)."""
    statistic = FleissKappaStatistic(table)
    return statistic(np.ones(statistic.n_units))
