"""Paired bootstrap intervals, vectorised and memory-bounded.

The paired bootstrap (Efron & Tibshirani 1993, ch. 13; Koehn 2004 for system comparison)
resamples *prompts* with replacement and recomputes the difference of the two systems on
each resample, so the correlation between the systems on the same prompt is kept. For a
difference of rates the statistic is the mean of the per-prompt differences
``d_i = candidate_i − reference_i``; the percentile interval is the α/2 and 1 − α/2
quantiles of the resampled means.

Two equivalent ways to draw a resample mean, chosen per call:

* **Multinomial counts** — when ``d`` takes few distinct values (a difference of two
  binary outcomes takes only −1, 0, 1) a resample is fully described by how many times
  each value is drawn, and those counts are exactly Multinomial(n, observed
  frequencies). Drawing B count vectors costs O(B·k) instead of O(B·n) and gives the same
  distribution as resampling indices.
* **Index matrices** — otherwise (continuous values such as reward margins) draw
  ``(rows, n)`` index blocks in chunks of at most ``chunk_elements`` indices, so memory
  stays bounded whatever B and n are.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

# Above this many distinct values the multinomial form stops paying off.
_MAX_LEVELS_FOR_COUNTS = 64
DEFAULT_CHUNK_ELEMENTS = 4_000_000  # ~32 MB of int64 indices per chunk


@dataclass(frozen=True)
class BootstrapInterval:
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    resamples: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {"value": self.estimate, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "resamples": self.resamples}


def derived_rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the given names (slice, metric).

    Each (metric, slice) gets its own stream, so adding a slice never changes the
    interval of another one and a recomputation reproduces every number exactly.
    """
    words = [seed] + [zlib.crc32(k.encode("utf-8")) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(words))


def bootstrap_means(values: ArrayLike, resamples: int, rng: np.random.Generator,
                    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> np.ndarray:
    """``resamples`` bootstrap replicates of the mean of ``values``."""
    x = np.asarray(values, dtype=float)
    n = x.size
    if n == 0:
        raise ValueError("cannot bootstrap an empty sample")
    levels, counts = np.unique(x, return_counts=True)
    if levels.size <= _MAX_LEVELS_FOR_COUNTS:
        draws = rng.multinomial(n, counts / n, size=resamples)
        return np.asarray(draws @ levels / n, dtype=float)
    rows = max(1, chunk_elements // n)
    out = np.empty(resamples)
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = x[idx].mean(axis=1)
    return out


def percentile_interval(replicates: np.ndarray, alpha: float) -> tuple[float, float]:
    low, high = np.quantile(replicates, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def bootstrap_mean_ci(values: ArrayLike, *, resamples: int = 2000, alpha: float = 0.05,
                      rng: np.random.Generator | None = None,
                      chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> BootstrapInterval:
    """Mean of ``values`` with a percentile bootstrap interval."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return BootstrapInterval(None, None, None, resamples)
    rng = rng if rng is not None else np.random.default_rng(0)
    reps = bootstrap_means(x, resamples, rng, chunk_elements)
    low, high = percentile_interval(reps, alpha)
    return BootstrapInterval(float(x.mean()), low, high, resamples)


def paired_bootstrap_delta(candidate: ArrayLike, reference: ArrayLike, *,
                           resamples: int = 2000, alpha: float = 0.05,
                           rng: np.random.Generator | None = None,
                           chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> BootstrapInterval:
    """``mean(candidate) − mean(reference)`` over paired prompts, with its interval."""
    cand = np.asarray(candidate, dtype=float)
    ref = np.asarray(reference, dtype=float)
    if cand.shape != ref.shape:
        raise ValueError("paired arrays must have the same length")
    return bootstrap_mean_ci(cand - ref, resamples=resamples, alpha=alpha, rng=rng,
                             chunk_elements=chunk_elements)
