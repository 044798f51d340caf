"""Statistics for training reports: rate intervals, calibration, correlation.

Pure functions: numbers in, numbers out.

* Wilson score interval (Wilson, 1927; Brown, Cai & DasGupta, 2001) for a binomial
  rate k/n: centre (p̂ + z²/2n)/(1 + z²/n), half-width
  z·sqrt(p̂(1−p̂)/n + z²/4n²)/(1 + z²/n). Good coverage for small n and p̂ near 0 or 1,
  where the Wald interval fails.
* Percentile bootstrap (Efron & Tibshirani, 1993) for statistics without a closed form.
* Expected calibration error (Naeini et al., 2015; Guo et al., 2017):
  ECE = Σ_b (n_b/n)·|acc_b − conf_b| over equal-width confidence bins.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for successes/n; (0, 1) when n is 0."""
    if n <= 0:
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


def bootstrap_interval(values: Sequence[float] | np.ndarray,
                       statistic: Callable[[np.ndarray], float] = np.mean,
                       n_resamples: int = 2000, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of ``statistic`` over resampled ``values``;
    (None, None) for no values (undefined, and JSON has no NaN)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None, None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, data.size, size=(n_resamples, data.size))
    stats = np.array([statistic(data[row]) for row in idx])
    alpha = (1 - confidence) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def reliability_bins(probabilities: Sequence[float] | np.ndarray,
                     outcomes: Sequence[int] | np.ndarray,
                     n_bins: int = 10) -> list[dict[str, Any]]:
    """Equal-width bins of predicted probability with mean confidence and observed rate
    (both None for an empty bin)."""
    prob = np.asarray(probabilities, dtype=float)
    hit = np.asarray(outcomes, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Right-closed bins, with 0 in the first, as in Guo et al. (2017).
    which = np.clip(np.searchsorted(edges, prob, side="left") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        sel = which == b
        count = int(sel.sum())
        bins.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": count,
                     "confidence": float(prob[sel].mean()) if count else None,
                     "observed": float(hit[sel].mean()) if count else None})
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
    """Reliability diagram (observed rate against mean confidence per bin) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    filled = [b for b in bins if b["n"]]
    ax.bar([(b["low"] + b["high"]) / 2 for b in filled], [b["observed"] for b in filled],
           width=[b["high"] - b["low"] for b in filled], alpha=0.6, edgecolor="black",
           label="observed")
    ax.plot([b["confidence"] for b in filled], [b["observed"] for b in filled], "o-",
            color="black", label="per-bin mean confidence")
    for b in filled:
        ax.annotate(str(int(b["n"])), ((b["low"] + b["high"]) / 2, b["observed"]),
                    ha="center", va="bottom", fontsize=7)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Pearson correlation with a 95 % Fisher-z interval (None when undefined)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = a.size
    if n < 4 or a.std() == 0 or b.std() == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n": int(n)}
    r = float(np.corrcoef(a, b)[0, 1])
    return {"value": r, **fisher_interval(r, int(n)), "n": int(n)}


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
