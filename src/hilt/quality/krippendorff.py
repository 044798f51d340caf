"""Krippendorff's alpha for nominal, ordinal, interval and ratio data with missing values."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from hilt.quality.agreement import ReliabilityData, reliability_to_long
from hilt.quality.answers import FloatArray, IntArray, numeric_order

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval", "ratio")

# Ordinal and ratio distances need the full value × value table; beyond this many
# distinct values that table stops being cheap.
MAX_DISTINCT_VALUES = 2000
# Up to this many (unit, value) cells the per-unit counts are kept as a dense matrix and the
# coincidence matrix is one matrix product; beyond it, a sparse list of value pairs.
DENSE_LIMIT = 20_000_000


class KrippendorffAlphaStatistic:
    r"""Krippendorff's alpha over units (items), re-evaluable with unit weights.

    From the coincidence matrix :math:`o_{ck} = \sum_u \frac{n_{uc} n_{uk} - [c=k]\,n_{uc}}
    {m_u - 1}` over the units with :math:`m_u \ge 2` pairable values, the marginals
    :math:`n_c = \sum_k o_{ck}` and :math:`n = \sum_c n_c`:

    .. math::

        \alpha = 1 - \frac{D_o}{D_e}
               = 1 - (n-1)\,\frac{\sum_{c,k} o_{ck}\,\delta^2_{ck}}
                                {\sum_{c,k} n_c n_k\,\delta^2_{ck}}

    with :math:`\delta^2_{ck}` = :math:`[c \ne k]` (nominal),
    :math:`\bigl(\sum_{g=c}^{k} n_g - \tfrac{n_c+n_k}{2}\bigr)^2` (ordinal),
    :math:`(c-k)^2` (interval), :math:`\bigl(\tfrac{c-k}{c+k}\bigr)^2` (ratio; 0 when
    :math:`c+k=0`).

    Nominal and interval use closed forms that need only per-unit sums —
    :math:`\sum_{c\ne k} o_{ck} = \sum_u (m_u^2 - \sum_c n_{uc}^2)/(m_u-1)` and
    :math:`\sum_{ck} o_{ck}(c-k)^2 = \sum_u 2(m_u S_{2u} - S_{1u}^2)/(m_u-1)` — so they
    work for any number of distinct values. Ordinal and ratio scatter the within-unit
    value pairs into a V × V coincidence matrix with one ``bincount``.

    Reference: K. Krippendorff (2011), "Computing Krippendorff's alpha-reliability",
    https://repository.upenn.edu/asc_papers/43 ; K. Krippendorff (2004), *Content
    Analysis*, 2nd ed., ch. 11.
    """

    def __init__(self, unit_index: IntArray, value_index: IntArray, values: FloatArray | None,
                 level: Level, n_values: int) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
        if level in ("interval", "ratio") and values is None:
            raise ValueError(f"level {level!r} needs numeric values")
        self.level = level
        self.n_values = n_values
        per_unit = np.bincount(unit_index) if unit_index.size else np.zeros(0, np.int64)
        pairable = per_unit >= 2
        if pairable.all():
            units, codes = unit_index, value_index
        else:
            # Renumber the pairable units 0..U-1: only they take part (and get resampled).
            keep = pairable[unit_index]
            units = (np.cumsum(pairable) - 1)[unit_index[keep]]
            codes = value_index[keep]
        self.n_units = int(pairable.sum())
        self.ratings = per_unit[pairable].astype(np.float64)
        self.inverse_pairs = 1.0 / np.maximum(self.ratings - 1.0, 1.0)
        self.dense_counts: FloatArray | None = None
        if level == "interval":
            assert values is not None
            # Centring first keeps n·S2 − S1² free of cancellation for large values.
            centred = values - (values[codes].mean() if codes.size else 0.0)
            # Alpha does not depend on the unit, but the test for "no variation" below
            # compares D_e with a count: scaled by a power of two (exact) to at most 1 in
            # magnitude, labels in small units (1e-7, 2e-7) are not taken for constant.
            largest = float(np.abs(centred[codes]).max()) if codes.size else 0.0
            if largest > 0:
                centred = np.ldexp(centred, -math.frexp(largest)[1])
            self.unit_sum = np.bincount(units, weights=centred[codes], minlength=self.n_units)
            self.unit_sum_squares = np.bincount(units, weights=centred[codes] ** 2,
                                                minlength=self.n_units)
            return
        key = units * n_values + codes
        if self.n_units * n_values <= DENSE_LIMIT:
            self.dense_counts = np.asarray(
                np.bincount(key, minlength=self.n_units * n_values),
                dtype=np.float64).reshape(self.n_units, n_values)
        else:
            distinct, unique_counts = np.unique(key, return_counts=True)
            self.pair_unit = distinct // n_values
            self.pair_value = distinct % n_values
            self.pair_count = unique_counts.astype(np.float64)
        if level == "nominal":
            self.unit_square_sum = (
                (self.dense_counts ** 2).sum(axis=1) if self.dense_counts is not None
                else np.bincount(self.pair_unit, weights=self.pair_count ** 2,
                                 minlength=self.n_units))
            return
        if n_values > MAX_DISTINCT_VALUES:
            raise ValueError(f"{level} alpha supports at most {MAX_DISTINCT_VALUES} distinct "
                             f"values (got {n_values}); use the interval level")
        self.values = values
        if self.dense_counts is None:
            self._build_value_pairs()

    def _build_value_pairs(self) -> None:
        """All (value, value) pairs within each unit, with their coincidence weight."""
        distinct_per_unit = np.bincount(self.pair_unit, minlength=self.n_units)
        starts = np.concatenate(([0], np.cumsum(distinct_per_unit)[:-1]))
        repeats = distinct_per_unit[self.pair_unit]
        first = np.repeat(np.arange(self.pair_unit.size), repeats)
        block_start = np.repeat(np.cumsum(repeats) - repeats, repeats)
        second = starts[self.pair_unit[first]] + (np.arange(first.size) - block_start)
        weight = self.pair_count[first] * self.pair_count[second]
        weight -= np.where(first == second, self.pair_count[first], 0.0)
        self.pairs_unit = self.pair_unit[first]
        self.pairs_cell = self.pair_value[first] * self.n_values + self.pair_value[second]
        self.pairs_weight = weight

    def _coincidence(self, unit_factor: FloatArray) -> FloatArray:
        size = self.n_values
        if self.dense_counts is not None:
            # O = Nᵀ diag(f) N − diag(Nᵀ f) with N the units × values count matrix
            weighted = self.dense_counts * unit_factor[:, None]
            coincidence = self.dense_counts.T @ weighted
            coincidence[np.diag_indices(size)] -= weighted.sum(axis=0)
            return coincidence
        scattered = np.bincount(self.pairs_cell, weights=unit_factor[self.pairs_unit]
                                * self.pairs_weight, minlength=size * size)
        return np.asarray(scattered, dtype=np.float64).reshape(size, size)

    def _distances(self, marginals: FloatArray) -> FloatArray:
        positions = np.arange(self.n_values)
        if self.level == "ordinal":
            cumulative = np.concatenate(([0.0], np.cumsum(marginals)))
            low = np.minimum(positions[:, None], positions[None, :])
            high = np.maximum(positions[:, None], positions[None, :])
            between = cumulative[high + 1] - cumulative[low]
            ordinal = (between - (marginals[:, None] + marginals[None, :]) / 2.0) ** 2
            return np.asarray(ordinal, dtype=np.float64)
        assert self.values is not None
        total = self.values[:, None] + self.values[None, :]
        difference = self.values[:, None] - self.values[None, :]
        ratio = np.divide(difference, total, out=np.zeros_like(total), where=total != 0)
        return ratio ** 2

    def __call__(self, unit_weights: FloatArray) -> float:
        unit_factor = unit_weights * self.inverse_pairs
        total = float(unit_weights @ self.ratings)
        if total <= 1:
            return float("nan")
        if self.level == "nominal":
            observed = float(unit_factor @ (self.ratings ** 2 - self.unit_square_sum))
            marginals = (unit_weights @ self.dense_counts if self.dense_counts is not None
                         else np.bincount(self.pair_value, weights=unit_weights[self.pair_unit]
                                          * self.pair_count, minlength=self.n_values))
            expected = total ** 2 - float((marginals ** 2).sum())
        elif self.level == "interval":
            observed = 2.0 * float(unit_factor @ (self.ratings * self.unit_sum_squares
                                                  - self.unit_sum ** 2))
            first_moment = float(unit_weights @ self.unit_sum)
            second_moment = float(unit_weights @ self.unit_sum_squares)
            expected = 2.0 * (total * second_moment - first_moment ** 2)
        else:
            coincidence = self._coincidence(unit_factor)
            marginals = coincidence.sum(axis=1)
            distances = self._distances(marginals)
            observed = float((coincidence * distances).sum())
            expected = float(marginals @ distances @ marginals)
        # No variation among the pairable values: alpha is undefined (Krippendorff 2011).
        if expected <= 1e-12 * max(total, 1.0) ** 2:
            return float("nan")
        return 1.0 - (total - 1.0) * observed / expected


def krippendorff_alpha(reliability_data: ReliabilityData, level: Level = "nominal",
                       value_domain: npt.ArrayLike | None = None) -> float:
    """Krippendorff's alpha of ``reviewers × items`` data with ``nan``/``None`` for gaps.

    The layout and the conventions match the ``krippendorff`` package. ``value_domain``
    orders the values for the ordinal level; without it the values are ordered as numbers
    (text that reads as a number too, so ``"9" < "10"``), and other text is a
    ``ValueError`` because its alphabetical order is not its meaning. Interval and ratio
    need finite numbers (``inf`` is a ``ValueError``), ratio numbers of at least 0.
    Returns ``nan`` when fewer than two pairable values exist or when all pairable
    values are the same (alpha undefined).
    """
    units, raw_values = reliability_to_long(reliability_data)
    if value_domain is None:
        # Hash-factorise, then sort only the few distinct values (much cheaper than
        # np.unique's sort of every rating).
        first_seen_codes, first_seen = pd.factorize(raw_values)
        order = np.argsort(np.asarray(first_seen), kind="stable")
        rank = np.empty(order.size, dtype=np.int64)
        rank[order] = np.arange(order.size)
        domain, codes = np.asarray(first_seen)[order], rank[first_seen_codes]
        if level == "ordinal":
            by_number = numeric_order(domain)
            if by_number is None:
                raise ValueError("ordinal alpha of values that are not numbers needs "
                                 "value_domain to give their order")
            position = np.empty_like(by_number)
            position[by_number] = np.arange(by_number.size)
            domain, codes = domain[by_number], position[codes]
    else:
        domain = np.asarray(value_domain)
        codes = pd.Index(domain).get_indexer(raw_values)
        if (codes < 0).any():
            raise ValueError("the reliability data contains values outside value_domain")
    numeric: FloatArray | None = None
    if level in ("interval", "ratio"):
        try:
            numeric = domain.astype(np.float64)
        except ValueError as exc:
            raise ValueError(f"level {level!r} needs numeric values") from exc
        if not np.isfinite(numeric[codes]).all():
            # Differences with an infinite value are NaN: alpha would come out NaN, read
            # as "the values do not vary" rather than as bad data.
            raise ValueError(f"level {level!r} needs finite values; the data holds "
                             f"{float(numeric[codes][~np.isfinite(numeric[codes])][0])!r}")
        if level == "ratio" and (numeric[codes] < 0).any():
            # The ratio distance ((c-k)/(c+k))^2 is 0 for -3 and 3: raters who always
            # differ in sign would get alpha 1.
            raise ValueError("level 'ratio' needs values of at least 0 (use 'interval' for "
                             "a scale without an absolute zero); the data holds "
                             f"{float(numeric[codes][numeric[codes] < 0][0])!r}")
    statistic = KrippendorffAlphaStatistic(units, codes.astype(np.int64, copy=False), numeric,
                                           level, len(domain))
    return statistic(np.ones(statistic.n_units))
