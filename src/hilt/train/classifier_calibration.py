"""Calibration of a classifier's probabilities: ECE, Brier score, reliability diagram.

The definitions are the reward model's (:mod:`hilt.train.reward_eval`), over classes
instead of the two orders of a pair: every row gives one point per class, (P(class),
1 if the row's label is that class else 0), so a two-class model gives each row in both
orders exactly as a reward model gives each pair, and its ECE is the usual
confidence-based ECE of the binary decision. With K classes the points number K·n.

* ``ece`` — Σ_b (n_b / N)·|observed_b − confidence_b| over 10 equal-width bins of those
  points (:func:`hilt.train.stats.expected_calibration_error`); ``ece_ci`` a percentile
  bootstrap over rows (1,000 resamples; a row's points are drawn together), widened to
  hold the ECE, null with a ``note`` below 5 rows. Read it as the spread, not as
  coverage of a true calibration error (ECE is biased upwards on small samples).
* ``reliability_bins`` — per bin ``n`` points, mean ``confidence``, ``observed``
  frequency and its 95 % Wilson interval; ``reliability.png`` draws them.
* ``brier`` — two classes: the mean of (P(positive) − 1[positive])², the usual Brier
  score; more classes: the mean over rows of Σ_k (P(k) − 1[label = k])² (Brier's
  original form, twice the two-class score for two classes). ``brier_ci``: percentile
  bootstrap over rows (2,000 resamples).

The probabilities are the model's ``predict_proba``: calibrated under balanced class
weights by default (a 50/50 prior, ``docs/train.md``), so on data whose classes are
not balanced part of the ECE is that prior, not a fault of the fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hilt.train.stats import expected_calibration_error, percentile_bootstrap, reliability_bins

N_BINS = 10


def _points(rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The (probability, outcome) points of rows ``[p_1 … p_K, onehot_1 … onehot_K]``."""
    return rows[:, :k].reshape(-1), rows[:, k:].reshape(-1)


def _ece(rows: np.ndarray, k: int) -> float | None:
    return expected_calibration_error(*_points(rows, k), N_BINS)


def _brier(rows: np.ndarray, k: int) -> float | None:
    if not len(rows):
        return None
    if k == 2:  # the positive class is the second column
        return float(np.mean((rows[:, 1] - rows[:, 3]) ** 2))
    return float(np.mean(((rows[:, :k] - rows[:, k:]) ** 2).sum(axis=1)))


def _interval(rows: np.ndarray, statistic: Any, resamples: int) -> dict[str, Any]:
    boot = percentile_bootstrap(rows, statistic, n_resamples=resamples, unit="row")
    return {"method": "percentile bootstrap over rows", "low": boot["low"],
            "high": boot["high"], "note": boot["note"]}


def calibration_report(proba: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """ECE (with its interval and bins) and Brier score of probabilities ``proba`` (one
    row per item, columns in the model's class order) against ``truth`` (the column of
    each row's label). ``calibration_n`` rows, ``calibration_points`` = rows × classes."""
    proba = np.asarray(proba, dtype=float)
    k = int(proba.shape[1]) if proba.ndim == 2 else 0
    truth = np.asarray(truth, dtype=int)
    rows = np.hstack([proba, np.eye(k)[truth]]) if len(truth) else np.zeros((0, 2 * k))
    probabilities, outcomes = _points(rows, k)
    return {"ece": _ece(rows, k),
            "ece_ci": _interval(rows, lambda r: _ece(r, k), 1000),
            "reliability_bins": reliability_bins(probabilities, outcomes, N_BINS),
            "brier": _brier(rows, k),
            "brier_ci": _interval(rows, lambda r: _brier(r, k), 2000),
            "calibration_n": int(len(rows)), "calibration_points": int(len(probabilities))}


def reliability_title(report: dict[str, Any], which: str = "") -> str:
    """The reliability diagram's title: n rows, the points (one per row and class) and
    the ECE with its 95 % interval, or why there is none."""
    ece, ci = report.get("ece"), report.get("ece_ci") or {}
    shown = "undefined" if ece is None else f"{ece:.3f}"
    if ece is not None:
        shown += (f" [95% CI {ci['low']:.3f}, {ci['high']:.3f}]"
                  if ci.get("low") is not None and ci.get("high") is not None
                  else " (no bootstrap interval: see ece_ci.note)")
    return (f"P(class), {which}n={report.get('calibration_n')} rows\n"
            f"(bins count each row once per class: {report.get('calibration_points')} "
            f"points)\nECE={shown}")
