"""Refusing to mix rubric versions whose labels mean different things.

A dataset version may hold labels decided under several versions of one rubric. When a
bridge re-review showed that the versions label the same items differently (the rubric
drift stage's transition matrix, :func:`hilt.quality.drift.bridge.bridge_compatibility`)
and no mapping, relabelling or acceptance was recorded, mixing them would silently
train on two policies at once. :func:`check_rubric_mixing` asks the drift stage's pure
:func:`hilt.quality.drift.transition.check_mixable` about every rubric version present
in the selected records and raises an error naming the versions; versions never
bridged (status ``unknown``) are allowed and listed in the manifest.

A recorded decision is applied before the records are made
(:func:`apply_rubric_decisions`): for each rubric and question, a label of an older
version than the newest version among the selected labels is translated by a
``mapping`` decision (:func:`hilt.quality.drift.transition.apply_mapping`), replaced by
the event's label under the newer version when a ``relabel`` decision stands and such a
label is selected, and left as it is under ``accept``. What each decision did, to how
many labels, goes into the manifest (``notes.rubric_mixing.decisions_applied``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from hilt.bulk import gc_paused
from hilt.data.records import Candidate, Example
from hilt.errors import InputError
from hilt.review.records import FinalLabelRecord

CompatLookup = Callable[[str, int, int], Any]


def rubric_versions(examples: Iterable[Example]) -> list[str]:
    """``rubric@version`` of every label behind the examples."""
    return sorted({f"{lb.rubric_id}@{lb.rubric_version}" for ex in examples
                   for lb in ex.labels})


def default_compat_lookup(session: Session) -> CompatLookup | None:
    try:
        from hilt.quality.drift.bridge import compat_lookup
    except ImportError:  # a deployment without the drift stage has no bridges
        return None
    return compat_lookup(session)


def check_rubric_mixing(examples: Iterable[Example], lookup: CompatLookup | None
                        ) -> dict[str, Any]:
    """Raise :class:`InputError` when the examples mix incompatible rubric versions;
    otherwise return what was checked (for the manifest)."""
    versions = rubric_versions(examples)
    if lookup is None:
        return {"rubric_versions": versions, "checked": False}
    from hilt.quality.drift.transition import check_mixable

    problems = check_mixable(versions, lookup, allow_unknown=False)
    blocking = [p for p in problems if p["status"] != "unknown"]
    if blocking:
        listed = "; ".join(f"{p['rubric_id']}@{p['old_version']} with "
                           f"{p['rubric_id']}@{p['new_version']} ({p['status']}: "
                           f"{p['reason']})" for p in blocking)
        raise InputError(f"the selected labels mix rubric versions whose bridge shows "
                         f"incompatible labels: {listed}; {blocking[0]['fix']}, or restrict "
                         "labels.rubric_versions", field="labels.rubric_versions")
    return {"rubric_versions": versions, "checked": True,
            "unbridged": [f"{p['rubric_id']}@{p['old_version']}->@{p['new_version']}"
                          for p in problems]}


# One link of the path from an old version to the newest: (old, new, the standing
# decisions by question id, None for one covering the whole version pair).
_Link = tuple[int, int, dict[str | None, dict[str, Any]]]


def _field(result: Any, name: str, default: Any = None) -> Any:
    if isinstance(result, Mapping):
        return result.get(name, default)
    return getattr(result, name, default)


def _by_question(decisions: Iterable[Any]) -> dict[str | None, dict[str, Any]]:
    out: dict[str | None, dict[str, Any]] = {}
    for d in decisions or ():
        if isinstance(d, Mapping) and d.get("kind") in ("mapping", "relabel", "accept"):
            out[d.get("question_id")] = dict(d)
    return out


def decision_links(result: Any, old: int, new: int) -> list[_Link]:
    """The standing decisions a compatibility answer for ``old`` -> ``new`` carries, as
    links in version order: the pair's own decisions, or, when the answer went through
    the chain of consecutive versions (:func:`hilt.quality.drift.bridge.bridge_compatibility`),
    each link's. Empty when none is recorded."""
    direct = _by_question(_field(result, "decisions") or [])
    if direct:
        return [(old, new, direct)]
    links: list[_Link] = []
    questions = _field(result, "questions") or {}
    for link in questions.values() if isinstance(questions, Mapping) else ():
        if not isinstance(link, Mapping) or "decisions" not in link:
            continue  # a question's bridge entry, not a link of a chain
        found = _by_question(link.get("decisions") or [])
        if found:
            links.append((int(link["old_version"]), int(link["new_version"]), found))
    return sorted(links, key=lambda link: link[0])


class _Applied:
    """Counts per decision of what it did to the selected labels."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int, int, str, str], dict[str, Any]] = {}

    def count(self, rubric_id: str, link: _Link, question_id: str,
              decision: dict[str, Any], what: str) -> None:
        old, new, _ = link
        key = (rubric_id, old, new, question_id, str(decision.get("decision_id", "")))
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = {
                "rubric_id": rubric_id, "old_version": old, "new_version": new,
                "question_id": question_id, "kind": decision["kind"],
                "decision_id": decision.get("decision_id"), "labels": 0,
                **({"mapping": dict(decision.get("mapping") or {}), "changed": 0}
                   if decision["kind"] == "mapping" else {}),
                **({"relabelled": 0, "kept_without_relabel": 0}
                   if decision["kind"] == "relabel" else {})}
        row["labels"] += 1
        if what:
            row[what] += 1

    def as_list(self) -> list[dict[str, Any]]:
        return [self.rows[k] for k in sorted(self.rows, key=lambda k: (k[0], k[3], k[1],
                                                                       k[2], k[4]))]


def apply_rubric_decisions(candidates: Iterable[Candidate], lookup: CompatLookup | None
                           ) -> tuple[Iterable[Candidate], list[dict[str, Any]]]:
    """The candidates with the recorded rubric decisions applied to their labels, and
    what was applied (one entry per decision and question, for the manifest).

    Per rubric and question, the newest version among the candidates' labels is the
    target; a label of an older version is looked up (``lookup(rubric, old, newest)``)
    and each standing decision on the way is applied in version order: ``mapping``
    translates its value (``apply_mapping``); ``relabel`` drops it when the same event
    has a selected label of that question under the link's new version or a later one
    (the re-review that replaces it; ``relabelled``), and keeps it otherwise
    (``kept_without_relabel``); ``accept`` leaves it. Without a lookup, or without
    labels of several versions, the candidates are returned as they are.
    """
    if lookup is None:
        return candidates, []
    with gc_paused():
        cands = list(candidates)
        newest: dict[tuple[str, str], int] = {}
        for c in cands:
            for lb in c.labels:
                key = (lb.rubric_id, lb.question_id)
                if lb.rubric_version > newest.get(key, 0):
                    newest[key] = lb.rubric_version
        olds: dict[tuple[str, str], set[int]] = defaultdict(set)
        for c in cands:
            for lb in c.labels:
                target = newest[(lb.rubric_id, lb.question_id)]
                if lb.rubric_version < target:
                    olds[(lb.rubric_id, lb.question_id)].add(lb.rubric_version)
        if not olds:
            return cands, []
        answers: dict[tuple[str, int, int], list[_Link]] = {}
        plan: dict[tuple[str, str, int], list[_Link]] = {}
        for (rubric_id, question_id), versions in olds.items():
            target = newest[(rubric_id, question_id)]
            for old in versions:
                pair = (rubric_id, old, target)
                if pair not in answers:
                    answers[pair] = decision_links(lookup(rubric_id, old, target), old,
                                                   target)
                links = [link for link in answers[pair]
                         if question_id in link[2] or None in link[2]]
                if links:
                    plan[(rubric_id, question_id, old)] = links
        if not plan:
            return cands, []
        applied = _Applied()
        for c in cands:
            if any((lb.rubric_id, lb.question_id, lb.rubric_version) in plan
                   for lb in c.labels):
                c.labels = _decided(c.labels, plan, applied)
    return cands, applied.as_list()


def _decided(labels: list[FinalLabelRecord],
             plan: Mapping[tuple[str, str, int], list[_Link]],
             applied: _Applied) -> list[FinalLabelRecord]:
    """One event's labels with the planned decisions applied (counted in ``applied``)."""
    from hilt.quality.drift.transition import apply_mapping

    out = []
    for lb in labels:
        links = plan.get((lb.rubric_id, lb.question_id, lb.rubric_version))
        if links is None:
            out.append(lb)
            continue
        value, dropped = lb.value, False
        for link in links:
            decisions = link[2]
            decision = decisions.get(lb.question_id) or decisions[None]
            kind = decision["kind"]
            if kind == "mapping":
                mapped = apply_mapping(value, decision.get("mapping") or {})
                applied.count(lb.rubric_id, link, lb.question_id, decision,
                              "changed" if mapped != value else "")
                value = mapped
            elif kind == "relabel":
                newer = any(other.rubric_id == lb.rubric_id
                            and other.question_id == lb.question_id
                            and other.rubric_version >= link[1] for other in labels)
                applied.count(lb.rubric_id, link, lb.question_id, decision,
                              "relabelled" if newer else "kept_without_relabel")
                if newer:
                    dropped = True
                    break
            else:
                applied.count(lb.rubric_id, link, lb.question_id, decision, "")
        if not dropped:
            out.append(lb if value == lb.value else replace(lb, value=value))
    return out
