"""Interval estimates and paired tests for rates measured on the same prompts.

Every function here is pure: plain numbers or numpy arrays in, plain numbers out.

Wilson score interval (Wilson 1927; recommended over the Wald interval by Brown, Cai &
DasGupta 2001, "Interval Estimation for a Binomial Proportion")::

    centre    = (p̂ + z²/2n) / (1 + z²/n)
    halfwidth = z / (1 + z²/n) · sqrt(p̂(1 − p̂)/n + z²/4n²)

Exact McNemar test (McNemar 1947; the exact form is the binomial test on the discordant
pairs, Fagerland, Lydersen & Laake 2013, BMC Med. Res. Methodol. 13:91). With ``b`` the
prompts where only the candidate shows the behaviour and ``c`` those where only the
reference does, under H0 (no difference) ``b | b + c ~ Binomial(b + c, 1/2)``::

    p = min(1, 2 · P[Binomial(b + c, 1/2) ≤ min(b, c)])

Paired difference of two rates (Newcombe 1998, "Improved confidence intervals for the
difference between binomial proportions based on paired data", Stat. Med. 17:2635-50,
method 10; Fagerland, Lydersen & Laake 2014 recommend it). With ``a`` prompts where
both systems show the behaviour, ``b`` only the candidate, ``c`` only the reference and
``d`` neither, ``p₁ = (a + b)/n``, ``p₂ = (a + c)/n``, ``D = p₁ − p₂`` and ``[lᵢ, uᵢ]`` the
Wilson intervals of the two rates::

    L = D − sqrt((p₁ − l₁)² − 2φ(p₁ − l₁)(u₂ − p₂) + (u₂ − p₂)²)
    U = D + sqrt((p₂ − l₂)² − 2φ(p₂ − l₂)(u₁ − p₁) + (u₁ − p₁)²)

with the correlation of the two rates estimated as ``φ = (A − n/2)/√M`` if ``A > n/2``,
``0`` if ``0 ≤ A ≤ n/2``, ``A/√M`` if ``A < 0`` (``A = ad − bc``, ``M`` the product of the
four margins; ``φ = 0`` when a margin is 0). Unlike a percentile bootstrap it never
collapses to a point: with no discordant pair its width still reflects ``n``.

Holm's step-down procedure (Holm 1979) controls the family-wise error rate across the
slices of a suite: sort the m p-values ascending, ``p_(i)^adj = max_{j ≤ i} min(1,
(m − j + 1) · p_(j))``. It is valid under any dependence between slices and uniformly
more powerful than Bonferroni.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike


def z_value(alpha: float) -> float:
    """Two-sided standard-normal quantile: ``z`` with P(|Z| > z) = alpha."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


@dataclass(frozen=True)
class Rate:
    """A proportion with its Wilson interval. ``rate`` is None when ``n`` is 0."""

    count: int
    n: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"count": self.count, "n": self.n, "rate": self.rate,
                "ci_low": self.ci_low, "ci_high": self.ci_high}


def wilson_interval(count: float, n: float, alpha: float = 0.05, *,
                    exact_ends: bool = True) -> tuple[float, float]:
    """Wilson score interval for ``count`` successes out of ``n`` (n > 0; both may be
    non-integer, as with an effective sample size under a complex design).

    At ``count = 0`` the lower bound is exactly 0 and at ``count = n`` the upper bound is
    exactly 1 (the closed form gives them only up to rounding, e.g. 2.8e-17, which a
    ``ceiling`` on ``ci_low`` with ``max: 0`` would read as a demonstrated non-zero
    rate), and the interval always holds the estimate ``count / n``.
    ``exact_ends=False`` gives the closed form clipped to [0, 1] only, as decision
    records before metrics version 3 hold it (they are recomputed that way)."""
    if n <= 0:
        raise ValueError("the Wilson interval needs n > 0")
    if not 0 <= count <= n:
        raise ValueError(f"count {count} outside [0, {n}]")
    z = z_value(alpha)
    p = count / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    if not exact_ends:
        return max(0.0, centre - half), min(1.0, centre + half)
    # The exact bound at count 0 (or n) is 0 (or 1); the closed form leaves a residue.
    low = 0.0 if count == 0 else min(p, max(0.0, float(centre - half)))
    high = 1.0 if count == n else max(p, min(1.0, float(centre + half)))
    return low, high


def rate_with_interval(count: int, n: int, alpha: float = 0.05, *,
                       exact_ends: bool = True) -> Rate:
    """The proportion ``count / n`` and its Wilson interval (all None when n is 0;
    ``exact_ends`` as in :func:`wilson_interval`)."""
    if n == 0:
        return Rate(0, 0, None, None, None)
    low, high = wilson_interval(count, n, alpha, exact_ends=exact_ends)
    return Rate(int(count), int(n), count / n, low, high)


def paired_difference_interval(both: int, candidate_only: int, reference_only: int,
                               neither: int, alpha: float = 0.05, *,
                               exact_ends: bool = True) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``p_candidate − p_reference`` on paired
    binary outcomes (method 10 of Newcombe 1998; see the module docstring); n > 0.
    ``exact_ends``: of the two rates' Wilson intervals (:func:`wilson_interval`)."""
    a, b, c, d = both, candidate_only, reference_only, neither
    n = a + b + c + d
    if n <= 0:
        raise ValueError("the paired interval needs n > 0")
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, alpha, exact_ends=exact_ends)
    l2, u2 = wilson_interval(a + c, n, alpha, exact_ends=exact_ends)
    margins = float(a + b) * float(c + d) * float(a + c) * float(b + d)
    phi = 0.0
    if margins > 0:
        cross = float(a) * d - float(b) * c
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(margins)
        elif cross < 0:
            phi = cross / math.sqrt(margins)
    diff = p1 - p2
    down = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    up = (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2
    return max(-1.0, diff - math.sqrt(max(down, 0.0))), min(1.0, diff + math.sqrt(max(up, 0.0)))


def mcnemar_exact(candidate_only: int, reference_only: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant-pair counts."""
    from scipy.stats import binom

    discordant = candidate_only + reference_only
    if discordant == 0:
        return 1.0
    tail = float(binom.cdf(min(candidate_only, reference_only), discordant, 0.5))
    return min(1.0, 2.0 * tail)


def discordant_counts(candidate: ArrayLike, reference: ArrayLike) -> tuple[int, int]:
    """(b, c): prompts where only the candidate / only the reference shows the behaviour."""
    cand = np.asarray(candidate, dtype=bool)
    ref = np.asarray(reference, dtype=bool)
    if cand.shape != ref.shape:
        raise ValueError("paired arrays must have the same length")
    return int(np.count_nonzero(cand & ~ref)), int(np.count_nonzero(~cand & ref))


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the order given."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted_sorted = np.maximum.accumulate(scaled)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return [float(x) for x in adjusted]
