"""Statistics for training reports: rate intervals, calibration, correlation.

Pure functions: numbers in, numbers out.

* Wilson score interval (Wilson, 1927; Brown, Cai & DasGupta, 2001) for a binomial
  rate k/n: centre (p̂ + z²/2n)/(1 + z²/n), half-width
  z·sqrt(p̂(1−p̂)/n + z²/4n²)/(1 + z²/n). Good coverage for small n and p̂ near 0 or 1,
  where the Wald interval fails.
* Percentile bootstrap (Efron & Tibshirani, 1993, ch. 13) for statistics without a
  closed form, computed by :func:`hilt.quality.bootstrap.bootstrap_interval` (the one
  implementation in hilt): rows of the data are the resampled units (a row may hold a
  whole cluster of values that must be drawn together), the interval is widened to
  hold the estimate, and there is no interval (None, with a note) below
  :data:`hilt.quality.bootstrap.MIN_BOOTSTRAP_UNITS` units or when every resample gives
  the same value — a percentile interval from 2 pairs, or from outcomes that are all
  equal, would be [v, v] and claim certainty the data lack.
* Expected calibration error (Naeini et al., 2015; Guo et al., 2017):
  ECE = Σ_b (n_b/n)·|acc_b − conf_b| over equal-width confidence bins; each bin's
  observed frequency with its Wilson interval.
* Pearson correlation with a Fisher-z interval (Fisher, 1921); over the members of
  pairs, the interval counts pairs (:func:`pearson_by_pair`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Z_95 = 1.959963984540054


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for successes/n; (0, 1) when n is 0. ``successes`` may be
    fractional (a tie counted as half a success).

    A ``ValueError`` unless ``0 <= successes <= n`` and ``z > 0``, all finite: NaN fails
    every comparison and an infinite count has no share, so either would otherwise come
    back as an interval ((0, 1), or (0, 0) for infinite trials) that looks measured."""
    if not (_finite(successes) and _finite(n) and _finite(z)):
        raise ValueError(f"the Wilson interval needs finite numbers, not successes "
                         f"{successes!r} of {n!r} trials (z {z!r})")
    if not 0 <= successes <= n or z <= 0:
        raise ValueError(f"the Wilson interval needs 0 <= successes <= trials and z > 0, "
                         f"not successes {successes!r} of {n!r} trials (z {z!r})")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At k = 0 or k = n the exact bound is 0 or 1; avoid a rounding residue like 3e-17.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def rate(successes: int, n: int) -> dict[str, Any]:
    """A rate with its 95 % Wilson interval, as plain data."""
    low, high = wilson_interval(successes, n)
    return {"value": successes / n if n else None, "successes": successes, "n": n,
            "ci_low": low, "ci_high": high}


class _RowStatistic:
    """``statistic`` over the rows of ``data`` as a weighted statistic (the interface of
    :mod:`hilt.quality.bootstrap`): a resample's unit weights are how often each row was
    drawn, so the rows are repeated that many times. ``statistic`` must not depend on
    the order of the rows; None from it is an undefined value (nan)."""

    def __init__(self, data: np.ndarray, statistic: Callable[[np.ndarray], Any]) -> None:
        self.data, self.statistic, self.n_units = data, statistic, int(len(data))

    def __call__(self, unit_weights: np.ndarray) -> float:
        counts = np.rint(unit_weights).astype(np.int64)
        value = self.statistic(np.repeat(self.data, counts, axis=0))
        return float("nan") if value is None else float(value)


def percentile_bootstrap(values: Sequence[Any] | np.ndarray,
                         statistic: Callable[[np.ndarray], Any] = np.mean,
                         n_resamples: int = 2000, confidence: float = 0.95,
                         seed: int = 0, unit: str = "value") -> dict[str, Any]:
    """Percentile bootstrap interval of ``statistic`` over the rows of ``values``:
    ``{"low", "high", "note"}``.

    Computed by :func:`hilt.quality.bootstrap.bootstrap_interval` (Efron & Tibshirani,
    1993, ch. 13): the interval is widened where needed to hold the estimate itself (a
    skewed statistic such as the ECE can put both percentiles on one side of it). The
    bounds are None, and ``note`` says why, with fewer than
    :data:`~hilt.quality.bootstrap.MIN_BOOTSTRAP_UNITS` rows, when fewer than half of
    the resamples give a defined value, or when every resample gives the same value
    (all outcomes equal): resampling cannot measure the uncertainty then. ``unit``
    names a row in the note ("pair"). Seeded: the same seed gives the same interval."""
    from hilt.quality.bootstrap import MIN_BOOTSTRAP_UNITS, min_resamples
    from hilt.quality.bootstrap import bootstrap_interval as items

    data = np.asarray(values, dtype=float)
    rows = int(len(data))
    if rows < MIN_BOOTSTRAP_UNITS:
        return {"low": None, "high": None,
                "note": f"only {rows} {unit}(s); a bootstrap interval needs at least "
                        f"{MIN_BOOTSTRAP_UNITS}"}
    low, high, defined = items(_RowStatistic(data, statistic), n_resamples, confidence, seed)
    if math.isfinite(low) and math.isfinite(high):
        return {"low": low, "high": high, "note": None}
    if defined < max(min_resamples(confidence), n_resamples // 2):
        note = "too few resamples gave a defined value for an interval"
    else:
        note = (f"every resample gave the same value (all {unit}s are alike), so the "
                "bootstrap cannot measure the uncertainty")
    return {"low": None, "high": None, "note": note}


def bootstrap_interval(values: Sequence[float] | np.ndarray,
                       statistic: Callable[[np.ndarray], Any] = np.mean,
                       n_resamples: int = 2000, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float | None, float | None]:
    """The bounds of :func:`percentile_bootstrap`; (None, None) where it gives none (no
    values, too few, or all resamples equal: JSON has no NaN)."""
    result = percentile_bootstrap(values, statistic, n_resamples, confidence, seed)
    return result["low"], result["high"]


def reliability_bins(probabilities: Sequence[float] | np.ndarray,
                     outcomes: Sequence[int] | np.ndarray,
                     n_bins: int = 10) -> list[dict[str, Any]]:
    """Equal-width bins of predicted probability with mean confidence and observed rate,
    and the 95 % Wilson interval of the observed rate (``observed_ci_low``,
    ``observed_ci_high``: the bin's outcomes as a binomial sample of ``n``); all None
    for an empty bin."""
    prob = np.asarray(probabilities, dtype=float)
    hit = np.asarray(outcomes, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Right-closed bins, with 0 in the first, as in Guo et al. (2017).
    which = np.clip(np.searchsorted(edges, prob, side="left") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        sel = which == b
        count = int(sel.sum())
        low, high = wilson_interval(float(hit[sel].sum()), count) if count else (None, None)
        bins.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": count,
                     "confidence": float(prob[sel].mean()) if count else None,
                     "observed": float(hit[sel].mean()) if count else None,
                     "observed_ci_low": low, "observed_ci_high": high})
    return bins


def expected_calibration_error(probabilities: Sequence[float] | np.ndarray,
                               outcomes: Sequence[int] | np.ndarray,
                               n_bins: int = 10) -> float | None:
    """ECE = Σ_b (n_b / n) · |observed_b − confidence_b| over equal-width bins; None
    without predictions."""
    n = len(probabilities)
    if n == 0:
        return None
    total = 0.0
    for b in reliability_bins(probabilities, outcomes, n_bins):
        if b["n"]:
            total += b["n"] / n * abs(b["observed"] - b["confidence"])
    return float(total)


def plot_reliability(bins: list[dict[str, Any]], path: str, title: str) -> None:
    """Reliability diagram (observed rate against mean confidence per bin) as a PNG, with
    each bin's 95 % Wilson interval of the observed rate as an error bar (bins from
    before these intervals were stored are drawn without one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    filled = [b for b in bins if b["n"]]
    centres = [(b["low"] + b["high"]) / 2 for b in filled]
    ax.bar(centres, [b["observed"] for b in filled],
           width=[b["high"] - b["low"] for b in filled], alpha=0.6, edgecolor="black",
           label="observed")
    ax.plot([b["confidence"] for b in filled], [b["observed"] for b in filled], "o-",
            color="black", label="per-bin mean confidence")
    with_ci = [b for b in filled if b.get("observed_ci_low") is not None
               and b.get("observed_ci_high") is not None]
    if with_ci:
        ax.errorbar([(b["low"] + b["high"]) / 2 for b in with_ci],
                    [b["observed"] for b in with_ci],
                    yerr=[[b["observed"] - b["observed_ci_low"] for b in with_ci],
                          [b["observed_ci_high"] - b["observed"] for b in with_ci]],
                    fmt="none", ecolor="firebrick", capsize=3, linewidth=1,
                    label="95% Wilson interval")
    for centre, b in zip(centres, filled, strict=True):
        ax.annotate(str(int(b["n"])), (centre, b["observed"]),
                    ha="center", va="bottom", fontsize=7)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    # PNG whatever the name says (matplotlib would add ".png" to a name without a
    # suffix, or refuse an unknown one), into a hidden file renamed into place, so that
    # ``path`` is never a half-written picture
    target = Path(path)
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        fig.savefig(part, format="png")
        os.replace(part, target)
    finally:
        plt.close(fig)
        part.unlink(missing_ok=True)


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Pearson correlation with a 95 % Fisher-z interval (None when undefined)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = a.size
    if n < 4 or a.std() == 0 or b.std() == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n": int(n)}
    r = float(np.corrcoef(a, b)[0, 1])
    return {"value": r, **fisher_interval(r, int(n)), "n": int(n)}


def pearson_by_pair(first_x: Sequence[float] | np.ndarray, second_x: Sequence[float] | np.ndarray,
                    first_y: Sequence[float] | np.ndarray, second_y: Sequence[float] | np.ndarray,
                    ) -> dict[str, Any]:
    """Pearson correlation of x and y over the 2n points of n pairs (both members of
    each), with a 95 % Fisher-z interval that counts pairs, not points.

    The two members of a pair are not independent (in a preference pair both replies
    answer one prompt), so a Fisher-z interval on 2n points is too narrow. To first
    order r is a mean of per-point influence values, and pairing inflates the variance
    of a mean by the design effect 1 + ρ (Kish, 1965; clusters of two with intra-pair
    correlation ρ ≤ 1), at most 2: n pairs carry at least n independent points' worth
    of information, so ``fisher_interval(r, n_pairs)`` is conservative whatever the
    intra-pair correlation. A simulation (docs/train.md) gave it 96–100 % coverage at
    6–150 pairs, against 80–97 % for Fisher-z on the 2n points and 87–95 % for a
    percentile pair bootstrap, which is too narrow at small n.
    ``n`` counts points, ``n_pairs`` the pairs the interval rests on; value and bounds
    are None when r is undefined (fewer than 4 points, or a constant variable), the
    bounds alone (with a ``note``) below 4 pairs."""
    columns = [np.asarray(v, dtype=float).reshape(-1)
               for v in (first_x, second_x, first_y, second_y)]
    n_pairs = int(columns[0].size)
    overall = pearson(np.concatenate(columns[:2]), np.concatenate(columns[2:]))
    result: dict[str, Any] = {"value": overall["value"], "ci_low": None, "ci_high": None,
                              "n": 2 * n_pairs, "n_pairs": n_pairs,
                              "method": "fisher-z, n = pairs", "note": None}
    if overall["value"] is None:
        result["note"] = "the correlation is undefined on these pairs"
    elif n_pairs < 4:
        result["note"] = f"only {n_pairs} pair(s); the interval needs at least 4"
    else:
        interval = fisher_interval(overall["value"], n_pairs)
        result.update({"ci_low": interval["ci_low"], "ci_high": interval["ci_high"]})
    return result


def fisher_interval(r: float, n: int) -> dict[str, float]:
    """95 % Fisher-z interval of a correlation ``r`` from ``n`` ≥ 4 points. ``atanh`` is
    infinite at ±1, so r is clipped first; the interval then reaches ±1 itself and always
    contains ``r`` (a perfect correlation must not fall outside its own interval)."""
    limit = 0.999999
    z = math.atanh(min(max(r, -limit), limit))
    half = Z_95 / math.sqrt(n - 3)
    low = -1.0 if r <= -limit else math.tanh(z - half)
    high = 1.0 if r >= limit else math.tanh(z + half)
    return {"ci_low": min(low, r), "ci_high": max(high, r)}
