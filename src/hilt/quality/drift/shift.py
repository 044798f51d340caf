r"""Distribution shift of a categorical variable between a reference and a current window.

Three views of the same two count vectors :math:`r` (reference, size :math:`n_r`) and
:math:`c` (current, size :math:`n_c`) over :math:`K` categories:

**Chi-square test of homogeneity** on the :math:`2 \times K` table. With
:math:`N = n_r + n_c` and column totals :math:`t_k = r_k + c_k`, expected counts are
:math:`E_{ik} = n_i t_k / N` and

.. math:: X^2 = \sum_{i,k} \frac{(O_{ik} - E_{ik})^2}{E_{ik}} \sim \chi^2_{K'-1}

under the null of one common distribution. The approximation needs every expected count
to be at least about 5 (Cochran 1954); categories below that are pooled into one
(repeatedly, smallest first) and :math:`K'` counts the columns left. With fewer than two
columns left there is nothing to test.

**Jensen–Shannon divergence** (Lin 1991) of the smoothed shares
:math:`p_k = (r_k + s)/(n_r + K s)`, :math:`q_k = (c_k + s)/(n_c + K s)`:

.. math:: \mathrm{JSD}(p, q) = \tfrac12 \mathrm{KL}(p \,\|\, m) + \tfrac12
          \mathrm{KL}(q \,\|\, m),\quad m = \tfrac12 (p + q)

in bits, so it lies in [0, 1]. Without drift the plug-in value is biased upwards: for
equal window sizes :math:`n`, :math:`4 n \ln 2 \cdot \mathrm{JSD}` is approximately
:math:`\chi^2_{K-1}`, so :math:`E[\mathrm{JSD}] \approx (K-1)/(4 n \ln 2)` bits.

**Population stability index** (Jeffreys' symmetric divergence of the smoothed shares):

.. math:: \mathrm{PSI} = \sum_k (q_k - p_k) \ln \frac{q_k}{p_k}

Under no drift with equal window sizes :math:`E[\mathrm{PSI}] \approx 2(K-1)/n`; the
usual reading (< 0.1 stable, 0.1–0.25 moderate, > 0.25 major shift; Siddiqi 2006) is
only meaningful once that noise floor is well below 0.1, i.e. :math:`n \gg 20 (K-1)`.

The smoothing pseudo-count :math:`s` (default ½, the Jeffreys prior) keeps the
logarithms finite when a category is empty in one window.

JSD and PSI are descriptive: they come without an interval, and being biased upward by
the noise floors above they are never read as estimates; alerts say so next to them
(:data:`hilt.quality.drift.alerts.DIVERGENCE_NOTE`). The uncertainty of a shift lies in
the chi-square p-value and in the Wilson intervals of the shares.

References: W. G. Cochran (1954), "Some methods for strengthening the common χ² tests",
Biometrics 10:417–451; J. Lin (1991), "Divergence measures based on the Shannon
entropy", IEEE Trans. Inf. Theory 37(1):145–151; N. Siddiqi (2006), *Credit Risk
Scorecards*, Wiley, ch. 8.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from hilt.quality.calibration import wilson_interval

FloatArray = npt.NDArray[np.float64]
POOLED = "(pooled)"


@dataclass(frozen=True)
class ChiSquareResult:
    statistic: float
    dof: int
    p_value: float
    columns: tuple[str, ...]
    """Categories tested, after pooling (the pooled one is named ``(pooled)``)."""
    pooled: tuple[str, ...]
    """Categories merged into the pooled column."""
    testable: bool


def smoothed_shares(counts: npt.ArrayLike, smoothing: float = 0.5) -> FloatArray:
    """Additive smoothing: :math:`(x_k + s) / (n + K s)`."""
    x = np.asarray(counts, dtype=np.float64)
    if np.any(x < 0):
        raise ValueError("counts must not be negative")
    if smoothing < 0:
        raise ValueError("smoothing must not be negative")
    total = x.sum() + smoothing * x.size
    if total <= 0:
        raise ValueError("no counts and no smoothing: shares are undefined")
    return (x + smoothing) / total


def jensen_shannon(reference: npt.ArrayLike, current: npt.ArrayLike,
                   smoothing: float = 0.5) -> float:
    """Jensen–Shannon divergence in bits between two count vectors (smoothed)."""
    p = smoothed_shares(reference, smoothing)
    q = smoothed_shares(current, smoothing)
    m = 0.5 * (p + q)

    def kl(a: FloatArray, b: FloatArray) -> float:
        keep = a > 0
        return float(np.sum(a[keep] * np.log2(a[keep] / b[keep])))

    return max(0.0, 0.5 * kl(p, m) + 0.5 * kl(q, m))


def population_stability_index(reference: npt.ArrayLike, current: npt.ArrayLike,
                               smoothing: float = 0.5) -> float:
    """PSI between two count vectors (smoothed; natural logarithm)."""
    p = smoothed_shares(reference, smoothing)
    q = smoothed_shares(current, smoothing)
    return float(np.sum((q - p) * np.log(q / p)))


def chi_square_homogeneity(reference: npt.ArrayLike, current: npt.ArrayLike,
                           categories: Sequence[str], min_expected: float = 5.0
                           ) -> ChiSquareResult:
    """Chi-square test that two count vectors come from one distribution, with sparse
    categories pooled until every expected count reaches ``min_expected``."""
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    names = list(categories)
    if not r.shape == c.shape == (len(names),):
        raise ValueError("reference, current and categories must have the same length")
    keep = (r + c) > 0  # categories seen in neither window carry no information
    r, c, names = r[keep], c[keep], [n for n, k in zip(names, keep, strict=True) if k]
    n_r, n_c = r.sum(), c.sum()
    if n_r == 0 or n_c == 0:
        return ChiSquareResult(0.0, 0, 1.0, tuple(names), (), False)
    smaller_row = min(n_r, n_c) / (n_r + n_c)
    order = np.argsort(r + c, kind="stable")
    pooled: list[int] = []
    # The smallest expected count of a column is (its total) × (the smaller row share);
    # pool from the sparsest column up until the pooled column itself is large enough.
    for idx in order:
        if (r[idx] + c[idx]) * smaller_row >= min_expected and (
                not pooled or (r[pooled] + c[pooled]).sum() * smaller_row >= min_expected):
            break
        pooled.append(int(idx))
    kept = [i for i in range(len(names)) if i not in set(pooled)]
    rows_r = [r[i] for i in kept]
    rows_c = [c[i] for i in kept]
    columns = [names[i] for i in kept]
    if pooled:
        rows_r.append(float(r[pooled].sum()))
        rows_c.append(float(c[pooled].sum()))
        columns.append(POOLED)
    pooled_names = tuple(names[i] for i in pooled)
    if len(columns) < 2:
        return ChiSquareResult(0.0, 0, 1.0, tuple(columns), pooled_names, False)
    table = np.array([rows_r, rows_c])
    statistic, p_value, dof, _ = stats.chi2_contingency(table, correction=False)
    return ChiSquareResult(float(statistic), int(dof), float(p_value), tuple(columns),
                           pooled_names, True)


@dataclass(frozen=True)
class ShiftResult:
    """Everything the shift monitors report for one group and window."""

    categories: tuple[str, ...]
    reference_counts: tuple[int, ...]
    current_counts: tuple[int, ...]
    n_reference: int
    n_current: int
    chi_square: float
    dof: int
    p_value: float
    pooled: tuple[str, ...]
    testable: bool
    jensen_shannon_bits: float
    psi: float
    current_share_intervals: dict[str, tuple[float, float, float]]
    """category -> (share, Wilson low, Wilson high) in the current window."""
    reference_share_intervals: dict[str, tuple[float, float, float]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _intervals(categories: Sequence[str], counts: FloatArray
               ) -> dict[str, tuple[float, float, float]]:
    n = float(counts.sum())
    low, high = wilson_interval(counts, np.full(counts.shape, n))
    shares = counts / n if n else np.zeros_like(counts)
    return {cat: (float(s), float(lo), float(hi))
            for cat, s, lo, hi in zip(categories, shares, low, high, strict=True)}


def label_shift(reference: Mapping[str, int], current: Mapping[str, int], *,
                categories: Sequence[str] | None = None, min_expected: float = 5.0,
                smoothing: float = 0.5) -> ShiftResult:
    """Compare two windows' category counts (dicts category -> count).

    ``categories`` fixes the category set (e.g. a question's options, so that an option
    nobody chose still counts towards the divergences); by default the union of both.
    """
    cats = list(categories) if categories is not None else sorted(set(reference) | set(current))
    extra = sorted((set(reference) | set(current)) - set(cats))
    cats += extra
    r = np.array([reference.get(k, 0) for k in cats], dtype=np.float64)
    c = np.array([current.get(k, 0) for k in cats], dtype=np.float64)
    chi = chi_square_homogeneity(r, c, cats, min_expected)
    return ShiftResult(
        categories=tuple(cats), reference_counts=tuple(int(x) for x in r),
        current_counts=tuple(int(x) for x in c), n_reference=int(r.sum()),
        n_current=int(c.sum()), chi_square=chi.statistic, dof=chi.dof, p_value=chi.p_value,
        pooled=chi.pooled, testable=chi.testable,
        jensen_shannon_bits=jensen_shannon(r, c, smoothing) if cats else 0.0,
        psi=population_stability_index(r, c, smoothing) if cats else 0.0,
        current_share_intervals=_intervals(cats, c),
        reference_share_intervals=_intervals(cats, r))
