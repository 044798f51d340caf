"""Simulated reviewers with known confusion matrices.

A reviewer answers a categorical question by drawing from row ``truth`` of its
confusion matrix. Profiles cover the people a real pool contains: experts, solid
reviewers, a careless one biased toward the most common label, a spammer answering
uniformly at random, and one whose accuracy decays over time (drift). Because the
matrices are known, a run can compare hilt's estimates of reviewer quality with the
truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FloatArray = np.ndarray


@dataclass(frozen=True)
class ReviewerProfile:
    """``accuracy`` on the diagonal; errors spread by ``bias`` toward class 0.

    ``decay_to`` (drifters): accuracy moves linearly from ``accuracy`` to ``decay_to``
    between ``decay_start`` and 1.0 of the run's progress (0..1).
    """

    name: str
    kind: str
    accuracy: float
    bias: float = 0.0
    decay_to: float | None = None
    decay_start: float = 0.5
    seconds_per_review: float = 45.0

    def accuracy_at(self, progress: float) -> float:
        if self.decay_to is None or progress <= self.decay_start:
            return self.accuracy
        frac = min(1.0, (progress - self.decay_start) / max(1e-9, 1 - self.decay_start))
        return self.accuracy + (self.decay_to - self.accuracy) * frac

    def confusion(self, n_classes: int, progress: float = 0.0) -> FloatArray:
        """Row-stochastic ``n_classes × n_classes`` matrix: P(answer | truth)."""
        if self.kind == "spammer":
            return np.full((n_classes, n_classes), 1.0 / n_classes)
        acc = self.accuracy_at(progress)
        matrix = np.zeros((n_classes, n_classes))
        for truth in range(n_classes):
            others = [c for c in range(n_classes) if c != truth]
            if not others:
                matrix[truth, truth] = 1.0
                continue
            weights = np.ones(len(others))
            if self.bias and 0 in others:
                weights[others.index(0)] += self.bias * len(others)
            matrix[truth, truth] = acc
            matrix[truth, others] = (1 - acc) * weights / weights.sum()
        return matrix

    def answer(self, truth: int, n_classes: int, rng: np.random.Generator,
               progress: float = 0.0) -> int:
        return int(rng.choice(n_classes, p=self.confusion(n_classes, progress)[truth]))


DEFAULT_POOL: tuple[ReviewerProfile, ...] = (
    ReviewerProfile("rev-ada", "expert", 0.95, seconds_per_review=40),
    ReviewerProfile("rev-ben", "solid", 0.88),
    ReviewerProfile("rev-cai", "solid", 0.86),
    ReviewerProfile("rev-dee", "solid", 0.84),
    ReviewerProfile("rev-eli", "careless", 0.68, bias=1.0, seconds_per_review=15),
    ReviewerProfile("rev-fox", "spammer", 0.5, seconds_per_review=5),
    ReviewerProfile("rev-gus", "drifter", 0.92, decay_to=0.55, decay_start=0.4),
)


def simulate_answers(truth: Sequence[int] | np.ndarray, n_classes: int,
                     pool: Sequence[ReviewerProfile], overlap: int, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Long-format answers ``(item, reviewer_index, label)``: ``overlap`` distinct
    reviewers per item, drawn uniformly from the pool."""
    n = len(truth)
    k = min(overlap, len(pool))
    items, reviewers, labels = [], [], []
    for i, t in enumerate(truth):
        chosen = rng.choice(len(pool), size=k, replace=False)
        for r in chosen:
            items.append(i)
            reviewers.append(int(r))
            labels.append(pool[int(r)].answer(int(t), n_classes, rng, progress=i / max(n, 1)))
    return np.array(items), np.array(reviewers), np.array(labels)
