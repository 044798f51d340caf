"""Stratified sampling of candidate outputs for human review.

Each stratum (e.g. slice × judgment) gets ``max(min_per_stratum, round(budget · share))``
items, capped at its size, chosen uniformly without replacement from a generator seeded
by (seed, stratum), so the sample is reproducible and adding a stratum leaves the others
unchanged. The inclusion probability of every chosen item is returned, so rates estimated
from the reviewed sample can be re-weighted (Horvitz–Thompson: weight = 1 / probability).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from hilt.evals.bootstrap import derived_rng


@dataclass(frozen=True)
class SampledItem:
    id: str
    stratum: str
    inclusion_probability: float


def stratified_sample(ids: Sequence[str], strata: Sequence[Hashable], budget: int, *,
                      min_per_stratum: int = 1, seed: int = 0) -> list[SampledItem]:
    """Choose about ``budget`` ids, proportionally per stratum with a floor per stratum."""
    if len(ids) != len(strata):
        raise ValueError("ids and strata must have the same length")
    if budget < 0 or min_per_stratum < 0:
        raise ValueError("budget and min_per_stratum must be non-negative")
    groups: dict[str, list[str]] = {}
    for item_id, stratum in zip(ids, strata, strict=True):
        groups.setdefault(str(stratum), []).append(item_id)
    total = len(ids)
    chosen: list[SampledItem] = []
    for name in sorted(groups):
        members = groups[name]
        share = round(budget * len(members) / total) if total else 0
        take = min(len(members), max(min_per_stratum, share))
        if take == 0:
            continue
        rng = derived_rng(seed, "review-sample", name)
        picks = rng.choice(len(members), size=take, replace=False)
        probability = take / len(members)
        chosen.extend(SampledItem(members[int(i)], name, probability) for i in sorted(picks))
    return chosen
