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

Grouped by prompt, the records of one conversation share a side as well. Two records
are joined when the prompt of one (its turns, normalised) is the beginning of the other's
prompt: the later record continues the conversation of the earlier one; or when the
other's prompt contains, anywhere, the first one's whole exchange: its prompt turns
followed by an assistant turn equal to one of its responses (an SFT completion, either
response of a preference pair, the response of a classification text). Joined records,
and so every record of a chain of such joins, take the split of the one with the
fewest prompt turns (ties: the smaller u): a conversation goes where its opening goes.
A record joined to no other keeps u(its own prompt), so its split is what it was
without this rule; adding records moves only records of the conversations they join.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

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
                  unit_of: Callable[[Example], float] | None = None,
                  notes: dict[str, Any] | None = None) -> dict[str, int]:
    """Set ``split`` on each example; returns the count per split.

    ``unit_of``, when given, returns u(group) of an example, precomputed (the selection
    pipeline computes it while tokenising); it must equal ``unit_hash(seed, group)``.
    Grouped by prompt, the records of one conversation are then joined (see the module
    docstring); ``notes``, when given, receives ``joined_to_conversation``: how many
    records took the split of another prompt.
    """
    counts = {"train": 0, "validation": 0}
    if spec.group_by == "prompt":
        if unit_of is None:
            group = _group_key(spec)
            cached: dict[str, float] = {}
            units = [cached[g] if g in cached else cached.setdefault(
                g, unit_hash(spec.seed, g)) for g in map(group, examples)]
        else:
            units = [unit_of(ex) for ex in examples]
        joined = join_conversations(examples, units, spec.seed)
        if notes is not None:
            notes["joined_to_conversation"] = joined
        for ex, u in zip(examples, units, strict=True):
            ex.split = "validation" if u < spec.validation_fraction else "train"
            counts[ex.split] += 1
        return counts
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


_ROLES = ("system", "user", "assistant", "tool")
_RENDERED_TURN = re.compile(rf"(?:{'|'.join(_ROLES)}): ")
_NEXT_RENDERED_TURN = re.compile(rf"\n(?=(?:{'|'.join(_ROLES)}): )")


def prompt_turns(ex: Example) -> list[tuple[str, str]]:
    """(role, text) of each turn of the prompt a prompt-grouped split groups by: the
    messages, or for a classification example the turns its event's rendered prompt was
    made of (:func:`hilt.data.records.render_prompt`: a single user turn is its text, a
    conversation ``role: text`` lines)."""
    if ex.messages:
        return [(m["role"], m["content"]) for m in ex.messages]
    text = ex.group_prompt()
    if _RENDERED_TURN.match(text) is None:
        return [("user", text)]
    return [(role, content) for role, _, content in
            (line.partition(": ") for line in _NEXT_RENDERED_TURN.split(text))]


def _turn_count(ex: Example) -> int:
    if ex.messages:
        return len(ex.messages)
    text = ex.group_prompt()
    if _RENDERED_TURN.match(text) is None:
        return 1
    return len(_NEXT_RENDERED_TURN.findall(text)) + 1


def responses(ex: Example) -> list[str]:
    """The responses an example pairs with its prompt: an SFT completion, both responses
    of a preference pair, the response of a classification text (``response`` or
    ``prompt_response``)."""
    if ex.kind == "classification":
        if ex.text_parts:
            return [ex.text_parts[-1]]
        if ex.text is not None and ex.prompt_text is not None and ex.text != ex.prompt_text:
            return [ex.text]
        return []
    return [t for t in (ex.completion, ex.chosen, ex.rejected) if t is not None]


def _key(turns: Sequence[tuple[str, str]]) -> str:
    """normalise(render_prompt(turns)) of normalised turns: the group of such a prompt."""
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    return " ".join(part for turn in turns for part in turn if part)


def join_conversations(examples: Sequence[Example], units: list[float], seed: str) -> int:
    """Replace, in place, each example's unit ``units[i]`` = u(its normalised prompt) by
    the unit of the conversation it belongs to (see the module docstring); returns how
    many units changed.

    Only examples with prompts of two turns or more can continue another's conversation
    or contain its exchange, so only their turns are normalised (with the responses of
    the examples whose prompts they contain); without any, nothing is done. Prompts are
    compared through u(prompt): the unit of each beginning and each window of a
    conversation is looked up among the examples' units, so the groups joined are
    groups of prompts, and memory beyond the units grows with the prompts joined.
    """
    turn_counts = [_turn_count(ex) for ex in examples]
    longer = [i for i, n in enumerate(turn_counts) if n >= 2]
    if not longer:
        return 0
    turns: dict[int, list[tuple[str, str]]] = {}
    for i in longer:
        raw = prompt_turns(examples[i])
        if raw[-1][0] != "assistant":  # then it starts no exchange and ends no beginning
            raw = raw[:-1]
        turns[i] = [(role, normalise(text)) for role, text in raw]
    # first turn -> prompt lengths of the longer prompts that start with it
    opening: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i in longer:
        if turns[i]:
            opening[turns[i][0]].add(turn_counts[i])
    # Every beginning of a longer prompt that may be some example's prompt (a), and every
    # window inside one followed by an assistant turn (b): (unit, example, turn after the
    # window or -1). A prompt of k >= 2 turns is only looked for where a longer prompt
    # of k turns starts with the same turn.
    queries: list[float] = []
    asked: list[tuple[int, int]] = []
    for i in longer:
        t, total = turns[i], turn_counts[i]
        for start in range(len(t)):
            lengths = {1} | opening.get(t[start], set())
            for k in sorted(lengths):
                end = start + k
                if start == 0 and end < total:
                    queries.append(unit_hash(seed, _key(t[:end])))
                    asked.append((i, -1))
                elif start > 0 and end < len(t) and t[end][0] == "assistant":
                    queries.append(unit_hash(seed, _key(t[start:end])))
                    asked.append((i, end))
    if not queries:
        return 0
    unit_array = np.asarray(units, dtype=np.float64)
    order = np.argsort(unit_array, kind="stable")
    in_order = unit_array[order]
    wanted = np.asarray(queries, dtype=np.float64)
    lo = np.searchsorted(in_order, wanted, side="left")
    hi = np.searchsorted(in_order, wanted, side="right")

    parent: dict[float, float] = {}

    def find(u: float) -> float:
        while u in parent and parent[u] != u:
            parent[u] = parent.get(parent[u], parent[u])
            u = parent[u]
        return u

    fewest: dict[float, int] = {}  # unit joined -> prompt turns (the fewest of its examples)

    def join(i: int, j: int) -> None:
        for k in (i, j):
            fewest[units[k]] = min(fewest.get(units[k], turn_counts[k]), turn_counts[k])
        a, b = find(units[i]), find(units[j])
        if a != b:
            parent[b] = a
            parent.setdefault(a, a)

    normalised_responses: dict[int, set[str]] = {}

    def answered(j: int, reply: str) -> bool:
        if j not in normalised_responses:
            normalised_responses[j] = {normalise(t) for t in responses(examples[j])}
        return reply in normalised_responses[j]

    for q in np.flatnonzero(hi > lo).tolist():
        i, end = asked[q]
        members = order[lo[q]:hi[q]].tolist()
        if end < 0:  # (a): the prompt of these examples begins this one
            join(i, members[0])
        else:  # (b): joined when one of their responses is the turn after the window
            reply = turns[i][end][1]
            for j in members:
                if answered(j, reply):
                    join(i, j)
    if not parent:
        return 0
    # each group of prompts takes the unit of the one with the fewest turns (then the
    # smallest unit)
    best: dict[float, tuple[int, float]] = {}
    for u in parent:
        r = find(u)
        cand = (fewest[u], u)
        if r not in best or cand < best[r]:
            best[r] = cand
    new_unit = {u: best[find(u)][1] for u in parent}
    changed = 0
    for i, u in enumerate(units):
        v = new_unit.get(u, u)
        if v != u:
            units[i] = v
            changed += 1
    return changed
