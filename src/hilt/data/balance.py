"""Stratified balancing across slices and a stable, hash-based train/validation split.

Both use a keyed hash u(key) = sha256(seed || key) / 2^256 in [0, 1) instead of a random
generator: a record's fate depends only on its own key and the seed, so adding records
to a later version never moves an old record from train to validation (or out of a
balanced sample) — the property that makes successive dataset versions comparable.

Balancing: ``cap`` keeps at most ``max_per_slice`` records per slice, ``equal``
downsamples every slice to the smallest slice's size (or ``max_per_slice`` if smaller);
within a slice the records with the smallest u(key) are kept, a uniform sample without
replacement.

Split: a record goes to validation when u(group) < validation_fraction, where the group
is the normalised prompt (so the same prompt never sits on both sides), the event, or the
subject (so one person's data never sits on both sides).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence

from hilt.data.ngrams import normalise
from hilt.data.records import Example
from hilt.data.spec import BalanceSpec, SplitSpec

_SCALE = float(1 << 64)


def unit_hash(seed: str, key: str) -> float:
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def balance(examples: Sequence[Example], spec: BalanceSpec
            ) -> tuple[list[Example], dict[str, list[str]]]:
    """Kept examples (input order) and the removed keys by reason ``slice_over_quota:S``."""
    if spec.strategy == "none":
        return list(examples), {}
    by_slice: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_slice[ex.slice].append(i)
    if spec.strategy == "cap":
        if spec.max_per_slice is None:  # the spec refuses this; a cap of nothing is a no-op
            raise ValueError("balance strategy 'cap' needs max_per_slice")
        quota = spec.max_per_slice
    else:
        smallest = min((len(v) for v in by_slice.values()), default=0)
        quota = min(smallest, spec.max_per_slice) if spec.max_per_slice else smallest
    keep = [True] * len(examples)
    removed: dict[str, list[str]] = {}
    for slice_name, members in sorted(by_slice.items()):
        if len(members) <= quota:
            continue
        ranked = sorted(members, key=lambda i: unit_hash(spec.seed, examples[i].key))
        dropped = ranked[quota:]
        for i in dropped:
            keep[i] = False
        removed[f"slice_over_quota:{slice_name}"] = sorted(examples[i].key for i in dropped)
    return [ex for ex, k in zip(examples, keep, strict=True) if k], removed


def _group_key(spec: SplitSpec) -> Callable[[Example], str]:
    if spec.group_by == "event":
        return lambda ex: ex.event_id
    if spec.group_by == "subject":
        return lambda ex: f"subject:{ex.subject_id}" if ex.subject_id else ex.event_id
    return lambda ex: normalise(ex.group_prompt())


def assign_splits(examples: Sequence[Example], spec: SplitSpec,
                  unit_of: Callable[[Example], float] | None = None) -> dict[str, int]:
    """Set ``split`` on each example; returns the count per split.

    ``unit_of``, when given, returns u(group) of an example, precomputed (the selection
    pipeline computes it while tokenising); it must equal ``unit_hash(seed, group)``.
    """
    counts = {"train": 0, "validation": 0}
    if unit_of is not None:
        for ex in examples:
            ex.split = "validation" if unit_of(ex) < spec.validation_fraction else "train"
            counts[ex.split] += 1
        return counts
    group = _group_key(spec)
    cache: dict[str, str] = {}
    for ex in examples:
        g = group(ex)
        split = cache.get(g)
        if split is None:
            split = "validation" if unit_hash(spec.seed, g) < spec.validation_fraction \
                else "train"
            cache[g] = split
        ex.split = split
        counts[split] += 1
    return counts
