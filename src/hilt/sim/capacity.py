"""Capacity planning by simulation: reviewers, overlap, label accuracy and SLA.

For a pool of reviewer profiles, an overlap ``k`` and a daily volume, estimate by Monte
Carlo (a) the accuracy of majority-vote and Dawid–Skene labels against the simulated
truth, with Wilson intervals over items, and (b) whether the pool's review hours cover
the volume, and the expected queue wait implied by an M/M/c approximation (Erlang C).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hilt.quality import DawidSkene, MajorityVote, wilson_interval
from hilt.quality.answers import Answers
from hilt.sim.reviewers import DEFAULT_POOL, ReviewerProfile, simulate_answers


@dataclass(frozen=True)
class CapacityPlan:
    overlap: int
    items_per_day: int
    reviewers: int
    utilisation: float
    feasible: bool
    expected_wait_minutes: float | None
    accuracy_mv: float
    accuracy_mv_ci: tuple[float, float]
    accuracy_ds: float
    accuracy_ds_ci: tuple[float, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def erlang_c_wait(arrival_per_hour: float, service_per_hour: float, servers: int
                  ) -> float | None:
    """Mean wait (hours) in an M/M/c queue, or None when the queue is unstable."""
    load = arrival_per_hour / service_per_hour
    if servers <= 0 or load >= servers:
        return None
    total = sum(load**n / math.factorial(n) for n in range(servers))
    top = load**servers / math.factorial(servers) * servers / (servers - load)
    p_wait = top / (total + top)
    return p_wait / (servers * service_per_hour - arrival_per_hour)


def plan(overlap: int, items_per_day: int, *, pool: Sequence[ReviewerProfile] = DEFAULT_POOL,
         n_classes: int = 2, prevalence: float = 0.25, hours_per_day: float = 8.0,
         n_items: int = 2000, seed: int = 0) -> CapacityPlan:
    rng = np.random.default_rng(seed)
    probs = np.full(n_classes, (1 - prevalence) / max(n_classes - 1, 1))
    probs[1 % n_classes] = prevalence if n_classes > 1 else 1.0
    probs /= probs.sum()
    truth = rng.choice(n_classes, size=n_items, p=probs)
    items, reviewers, labels = simulate_answers(truth, n_classes, pool, overlap, rng)
    answers = Answers.from_columns(items, reviewers, labels)
    results = {}
    for name, model in (("mv", MajorityVote()), ("ds", DawidSkene())):
        model.fit(answers)
        predicted = np.asarray(model.labels_, dtype=int)
        item_ids = np.asarray(model.items_, dtype=int)
        correct = int((predicted == truth[item_ids]).sum())
        ci = wilson_interval(correct, len(item_ids))
        results[name] = (correct / len(item_ids), (float(ci[0]), float(ci[1])))
    mean_seconds = float(np.mean([p.seconds_per_review for p in pool]))
    service_per_hour = 3600.0 / mean_seconds
    reviews_per_hour = items_per_day * overlap / hours_per_day
    capacity_per_hour = service_per_hour * len(pool)
    wait = erlang_c_wait(reviews_per_hour, service_per_hour, len(pool))
    return CapacityPlan(
        overlap=overlap, items_per_day=items_per_day, reviewers=len(pool),
        utilisation=round(reviews_per_hour / capacity_per_hour, 4),
        feasible=wait is not None,
        expected_wait_minutes=None if wait is None else round(wait * 60, 2),
        accuracy_mv=round(results["mv"][0], 4), accuracy_mv_ci=results["mv"][1],
        accuracy_ds=round(results["ds"][0], 4), accuracy_ds_ci=results["ds"][1])
