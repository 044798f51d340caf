"""Stratified sampling of candidate outputs for human review.

The sample never holds more than ``budget`` items. Each stratum gets at least
``min(min_per_stratum, size)`` items; the rest of the budget is shared out in proportion
to stratum size (largest remainders, ties by stratum name), capped at each stratum's size.

When the floors alone do not fit the budget (more strata than ``budget //
min_per_stratum``), small strata are merged first (:func:`merge_strata`): strata are
sorted by name and cut into at most that many contiguous runs of about equal size, each
run becoming one stratum named by its members joined with ``" + "``. Strata only merge
with strata of the same ``within`` group (e.g. the same expectation, so every merged
stratum still lies inside one metric's population); only when the budget is smaller
than the number of such groups is everything merged into one stratum. Every item then
still belongs to a stratum that is sampled, so the stratified (Horvitz–Thompson)
estimate stays unbiased for the whole population rather than for the strata that
happened to be drawn.

Items are chosen uniformly without replacement from a generator seeded by (seed,
stratum), so the sample is reproducible. The inclusion probability of every chosen item
(``n_h / N_h`` of its possibly merged stratum) is returned, so rates estimated from the
reviewed sample can be re-weighted (Horvitz–Thompson: weight = 1 / probability).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from hilt.evals.bootstrap import derived_rng

MERGE_SEPARATOR = " + "


@dataclass(frozen=True)
class SampledItem:
    id: str
    stratum: str
    inclusion_probability: float


def allocate(sizes: Mapping[str, int], budget: int, floor: int) -> dict[str, int]:
    """Items per stratum: at least ``min(floor, size)``, the rest of ``budget`` in
    proportion to size, never more than a stratum's size, in total ``min(budget, N)``.

    Needs ``Σ min(floor, size) <= budget``."""
    total = min(budget, sum(sizes.values()))
    fixed: dict[str, int] = {}
    while True:
        free = {h: n for h, n in sizes.items() if h not in fixed}
        left = total - sum(fixed.values())
        free_total = sum(free.values())
        shares = {h: left * n / free_total if free_total else 0.0 for h, n in free.items()}
        below = {h for h, n in free.items() if shares[h] < min(floor, n)}
        if not below:
            break
        fixed.update({h: min(floor, free[h]) for h in below})
    counts = {h: math.floor(s) for h, s in shares.items()}
    spare = left - sum(counts.values())
    by_remainder = sorted(shares, key=lambda h: (-(shares[h] - counts[h]), h))
    for h in by_remainder[:spare]:
        counts[h] = min(counts[h] + 1, sizes[h])  # float shares may sit a hair above
    return {**fixed, **counts}


def merge_strata(strata: Sequence[Hashable], budget: int, *, min_per_stratum: int = 1,
                 within: Sequence[Hashable] | None = None) -> dict[str, str]:
    """Stratum name → the name of the stratum it is sampled in (itself unless merged).

    See the module docstring; ``within`` gives each item's group (strata merge only
    inside one group), ``None`` lets any strata merge."""
    sizes: dict[str, int] = {}
    group_of: dict[str, str] = {}
    for i, stratum in enumerate(strata):
        name = str(stratum)
        sizes[name] = sizes.get(name, 0) + 1
        group_of.setdefault(name, "" if within is None else str(within[i]))
    identity = {name: name for name in sizes}
    floor = min(min_per_stratum, budget)
    if floor <= 0 or sum(min(floor, n) for n in sizes.values()) <= budget:
        return identity
    slots = max(1, budget // floor)
    groups: dict[str, list[str]] = {}
    for name in sorted(sizes):
        groups.setdefault(group_of[name], []).append(name)
    if slots < len(groups):
        groups = {"": sorted(sizes)}
    group_sizes = {g: sum(sizes[h] for h in members) for g, members in groups.items()}
    per_group = allocate(group_sizes, slots, 1)
    mapping: dict[str, str] = {}
    for g, members in groups.items():
        runs = _contiguous_runs(members, [sizes[h] for h in members], per_group[g])
        for run in runs:
            merged = MERGE_SEPARATOR.join(run)
            mapping.update({h: merged for h in run})
    return mapping


def _contiguous_runs(names: list[str], sizes: list[int], k: int) -> list[list[str]]:
    """``names`` (in order) cut into at most ``k`` runs of about equal total size: each
    stratum goes to the run its size midpoint falls in."""
    if k >= len(names):
        return [[name] for name in names]
    total = sum(sizes)
    runs: dict[int, list[str]] = {}
    before = 0
    for name, size in zip(names, sizes, strict=True):
        run = min(k - 1, int((before + size / 2) * k / total))
        runs.setdefault(run, []).append(name)
        before += size
    return [runs[r] for r in sorted(runs)]


def stratified_sample(ids: Sequence[str], strata: Sequence[Hashable], budget: int, *,
                      min_per_stratum: int = 1, seed: int = 0,
                      within: Sequence[Hashable] | None = None) -> list[SampledItem]:
    """At most ``budget`` ids, proportionally per stratum with a floor per stratum;
    strata are merged first when the floors do not fit (see the module docstring)."""
    if len(ids) != len(strata) or (within is not None and len(within) != len(ids)):
        raise ValueError("ids, strata and within must have the same length")
    if budget < 0 or min_per_stratum < 0:
        raise ValueError("budget and min_per_stratum must be non-negative")
    if budget == 0 or not ids:
        return []
    mapping = merge_strata(strata, budget, min_per_stratum=min_per_stratum, within=within)
    groups: dict[str, list[str]] = {}
    for item_id, stratum in zip(ids, strata, strict=True):
        groups.setdefault(mapping[str(stratum)], []).append(item_id)
    takes = allocate({name: len(members) for name, members in groups.items()}, budget,
                     min(min_per_stratum, budget))
    chosen: list[SampledItem] = []
    for name in sorted(groups):
        members, take = groups[name], takes[name]
        if take == 0:
            continue
        rng = derived_rng(seed, "review-sample", name)
        picks = rng.choice(len(members), size=take, replace=False)
        probability = take / len(members)
        chosen.extend(SampledItem(members[int(i)], name, probability) for i in sorted(picks))
    return chosen
