"""Bridge sets on the store: when a rubric gets a new version, re-review a stratified
sample of items labelled under the old version, estimate the old→new transition matrix
(:mod:`.transition`), and say whether the two versions' labels may be mixed.

- :func:`create_bridge` samples, per old label of one single-choice question, up to
  ``per_stratum`` items (seeded; one label per event; gold, cluster-propagated and
  erased or non-``review``-consented items left out) and creates review tasks under the
  new version through the review stage (:func:`hilt.review.tasks.task_row` /
  :func:`hilt.review.tasks.insert_tasks`), in one transaction with the audit entries.
- :func:`bridge_status` reads the re-review labels back and estimates the matrix.
- :func:`bridge_compatibility` answers compatible / incompatible / unknown for a pair of
  versions, and whether they are *mixable* (compatible, or a decision is recorded).
- :func:`record_decision` records a label mapping, a relabelling, an acceptance, or the
  withdrawal of an earlier decision (audited).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.errors import InputError, NotFound
from hilt.quality.drift.transition import (
    COMPATIBLE,
    INCOMPATIBLE,
    UNKNOWN,
    BridgeSettings,
    transition_matrix,
)
from hilt.review.escalation import REVIEWABLE
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import EventRow
from hilt.store.tables.drift import BridgeItemRow, BridgeSetRow, RubricCompatDecisionRow
from hilt.store.tables.review import FinalLabelRow, ReviewTaskRow, RubricVersionRow

DECISION_KINDS = ("mapping", "relabel", "accept", "withdraw")
# Bounds on a bridge's size, the same for the CLI and the API: reviews per item and
# items sampled per old label.
MAX_BRIDGE_OVERLAP = 20
MAX_PER_STRATUM = 10_000


def _choice_options(session: Session, rubric_id: str, version: int) -> dict[str, list[str]]:
    row = session.get(RubricVersionRow, (rubric_id, version))
    if row is None:
        raise NotFound(f"rubric {rubric_id}@{version} is not published")
    return {q["id"]: [o["value"] if isinstance(o, dict) else str(o) for o in q["options"]]
            for q in row.spec.get("questions", []) if q.get("kind") == "single_choice"}


def _check_order(old_version: int, new_version: int) -> None:
    """Bridges and decisions are stored under (old, new) with old < new, the order in
    which compatibility looks them up; a reversed pair would be stored and audited but
    never found."""
    if old_version < 1:
        raise InputError(f"versions start at 1, not {old_version}", field="old_version")
    if old_version == new_version:
        raise InputError("old and new version are the same", field="new_version")
    if old_version > new_version:
        raise InputError(f"the new version ({new_version}) must be later than the old "
                         f"({old_version})", field="new_version")


def _check_size(per_stratum: int, overlap_k: int) -> None:
    for value, name, top in ((per_stratum, "per_stratum", MAX_PER_STRATUM),
                             (overlap_k, "overlap_k", MAX_BRIDGE_OVERLAP)):
        if not 1 <= value <= top:
            raise InputError(f"must be from 1 to {top}, not {value}", field=name)


def create_bridge(session: Session, rubric_id: str, old_version: int, new_version: int, *,
                  actor: str, question_id: str | None = None, per_stratum: int = 30,
                  seed: int = 0, pool: str = "default", overlap_k: int = 3,
                  severity: int = 3, settings: BridgeSettings = BridgeSettings(),
                  now: datetime | None = None) -> dict[str, Any]:
    """Sample the bridge set and queue its items for re-review under ``new_version``."""
    from hilt.review.tasks import insert_tasks, task_row

    _check_order(old_version, new_version)
    _check_size(per_stratum, overlap_k)
    old_q = _choice_options(session, rubric_id, old_version)
    new_q = _choice_options(session, rubric_id, new_version)
    common = [q for q in old_q if q in new_q]
    if question_id is None:
        if not common:
            raise InputError(f"{rubric_id}@{old_version} and @{new_version} share no "
                             "single-choice question to stratify on", field="question")
        question_id = common[0]
    elif question_id not in common:
        raise InputError(f"question {question_id!r} is not a single-choice question of "
                         f"both versions (shared: {common})", field="question")
    f = FinalLabelRow
    rows = session.execute(
        sa.select(f.id, f.event_id, f.value, f.decided_at, EventRow.payload)
        .join(EventRow, EventRow.id == f.event_id)
        .where(f.rubric_id == rubric_id, f.rubric_version == old_version,
               f.question_id == question_id,
               f.provenance.not_in(["gold", "cluster_propagated"]),
               EventRow.erased_at.is_(None), REVIEWABLE)
        .order_by(f.event_id, f.decided_at.desc(), f.id)).all()
    latest: dict[str, Any] = {}
    for r in rows:  # one (the newest) label per event
        latest.setdefault(r.event_id, r)
    strata: dict[str, list[Any]] = defaultdict(list)
    for r in sorted(latest.values(), key=lambda r: r.id):
        strata[str(r.value)].append(r)
    rng = np.random.default_rng(seed)
    bridge_id = "bridge_" + uuid.uuid4().hex[:20]
    moment = now or utcnow()
    chosen, summary = [], {}
    for stratum in sorted(strata):
        members = strata[stratum]
        take = min(per_stratum, len(members))
        picks = sorted(rng.choice(len(members), size=take, replace=False).tolist())
        chosen += [(stratum, members[i]) for i in picks]
        summary[stratum] = {"available": len(members), "sampled": take}
    if not chosen:
        raise InputError(f"no labels of {rubric_id}@{old_version} question {question_id!r} "
                         "to re-review", field="old_version")
    session.add(BridgeSetRow(
        id=bridge_id, rubric_id=rubric_id, old_version=old_version, new_version=new_version,
        question_id=question_id, per_stratum=per_stratum, seed=seed, strata=summary,
        settings={**settings.as_dict(), "pool": pool, "overlap_k": overlap_k},
        created_by=actor, created_at=moment))
    session.flush()
    tasks = []
    for stratum, r in chosen:
        n_responses = len(((r.payload or {}).get("responses")) or []) or 1
        row = task_row(event_id=r.event_id, pool=pool, severity=severity,
                       rubric_id=rubric_id, rubric_version=new_version, overlap_k=overlap_k,
                       now=moment, n_responses=n_responses,
                       provenance={"rule": "bridge", "matched": [
                           {"rule": "bridge", "bridge_id": bridge_id,
                            "old_label_id": r.id, "stratum": stratum}]})
        tasks.append(row)
    insert_tasks(session, tasks, actor=actor, action="task.create_bridge",
                 payload={"bridge_id": bridge_id,
                          "rubric": f"{rubric_id}@{old_version}->{new_version}"})
    session.flush()
    session.execute(sa.insert(BridgeItemRow), [
        {"bridge_id": bridge_id, "task_id": t["id"], "event_id": r.event_id,
         "old_label_id": r.id, "old_value": r.value, "stratum": stratum}
        for t, (stratum, r) in zip(tasks, chosen, strict=True)])
    audit.append(session, actor=actor, action="bridge.create", entity_type="bridge_set",
                 entity_id=bridge_id, payload={
                     "rubric_id": rubric_id, "old_version": old_version,
                     "new_version": new_version, "question_id": question_id,
                     "per_stratum": per_stratum, "seed": seed, "strata": summary,
                     "tasks": len(tasks)})
    return {"bridge_id": bridge_id, "question_id": question_id, "tasks": len(tasks),
            "strata": summary}


def _settings(row: BridgeSetRow) -> BridgeSettings:
    known = BridgeSettings.__dataclass_fields__
    return BridgeSettings(**{k: v for k, v in row.settings.items() if k in known})


def bridge_status(session: Session, bridge_id: str,
                  mapping: dict[str, str] | None = None) -> dict[str, Any]:
    """Progress of a bridge and its transition matrix over the items re-reviewed so far."""
    bridge = session.get(BridgeSetRow, bridge_id)
    if bridge is None:
        raise NotFound(f"bridge set {bridge_id!r} does not exist")
    items = session.execute(sa.select(BridgeItemRow).where(
        BridgeItemRow.bridge_id == bridge_id)).scalars().all()
    task_ids = [i.task_id for i in items]
    new_labels: dict[str, Any] = dict(session.execute(
        sa.select(FinalLabelRow.task_id, FinalLabelRow.value).where(
            FinalLabelRow.task_id.in_(task_ids),
            FinalLabelRow.question_id == bridge.question_id)).all()) if items else {}
    statuses = dict(session.execute(sa.select(ReviewTaskRow.id, ReviewTaskRow.status).where(
        ReviewTaskRow.id.in_([i.task_id for i in items]))).all()) if items else {}
    if mapping is None:
        decision = _current_decisions(session, bridge.rubric_id, bridge.old_version,
                                      bridge.new_version).get(bridge.question_id)
        mapping = decision.mapping if decision is not None and decision.kind == "mapping" \
            else {}
    pairs = [(i.old_value, new_labels[i.task_id]) for i in items if i.task_id in new_labels]
    old_opts = _choice_options(session, bridge.rubric_id, bridge.old_version)
    new_opts = _choice_options(session, bridge.rubric_id, bridge.new_version)
    # What each row could reach: the bridge's items per old label (an old option nobody
    # chose has none, and is untestable rather than forever "too few").
    available: dict[str, int] = defaultdict(int)
    for item in items:
        available[str(item.old_value)] += 1
    # What a larger bridge could reach: the labels under the old version each stratum
    # was sampled from (recorded when the bridge was created).
    labelled = {str(k): int(v.get("available", 0)) for k, v in (bridge.strata or {}).items()
                if isinstance(v, dict)}
    matrix = transition_matrix(pairs, old_categories=old_opts.get(bridge.question_id),
                               new_categories=new_opts.get(bridge.question_id),
                               mapping=mapping, settings=_settings(bridge),
                               available=available, labelled=labelled)
    counts: dict[str, int] = defaultdict(int)
    for s in statuses.values():
        counts[s] += 1
    return {"bridge_id": bridge.id, "rubric_id": bridge.rubric_id,
            "old_version": bridge.old_version, "new_version": bridge.new_version,
            "question_id": bridge.question_id, "items": len(items),
            "relabelled": len(pairs), "task_status": dict(counts),
            "complete": len(pairs) == len(items), "strata": bridge.strata,
            "settings": bridge.settings, "matrix": matrix.as_dict()}


def _current_decisions(session: Session, rubric_id: str, old: int, new: int
                       ) -> dict[str | None, RubricCompatDecisionRow]:
    """The standing decision per question (None: the whole version pair)."""
    d = RubricCompatDecisionRow
    rows = session.execute(sa.select(d).where(d.rubric_id == rubric_id, d.old_version == old,
                                              d.new_version == new)
                           .order_by(d.decided_at, d.id)).scalars().all()
    out: dict[str | None, RubricCompatDecisionRow] = {}
    for row in rows:
        if row.kind == "withdraw":
            out.pop(row.question_id, None)
        else:
            out[row.question_id] = row
    return out


def _question_ids(session: Session, rubric_id: str, version: int) -> list[str]:
    row = session.get(RubricVersionRow, (rubric_id, version))
    return [str(q.get("id")) for q in (row.spec.get("questions", []) if row else [])]


def _check_other_decision(session: Session, rubric_id: str, old: int, new: int, *,
                          kind: str, question_id: str | None,
                          mapping: dict[str, str] | None) -> None:
    """A relabel, accept or withdraw names what it covers: a decision on a question
    neither version has (a typing slip) would be recorded and audited yet cover
    nothing, and a withdrawal with no standing decision would cancel nothing."""
    if mapping:
        raise InputError(f"only a mapping decision takes a mapping, not {kind!r}",
                         field="mapping")
    if kind == "withdraw":
        if question_id not in _current_decisions(session, rubric_id, old, new):
            what = (f"question {question_id!r}" if question_id is not None
                    else "the whole version pair")
            raise InputError(f"no standing decision on {what} of {rubric_id}@{old} -> "
                             f"@{new} to withdraw", field="question")
        return
    if question_id is None:
        return
    shared = [q for q in _question_ids(session, rubric_id, old)
              if q in _question_ids(session, rubric_id, new)]
    if question_id not in shared:
        raise InputError(f"question {question_id!r} is not a question of both versions "
                         f"(shared: {shared})", field="question")


def _check_bridge_of(session: Session, bridge_id: str, rubric_id: str, old: int,
                     new: int) -> None:
    """The bridge a decision rests on exists and bridges the same versions."""
    bridge = session.get(BridgeSetRow, bridge_id)
    if bridge is None:
        raise InputError(f"bridge set {bridge_id!r} does not exist", field="bridge_id")
    if (bridge.rubric_id, bridge.old_version, bridge.new_version) != (rubric_id, old, new):
        raise InputError(f"bridge set {bridge_id!r} bridges {bridge.rubric_id}@"
                         f"{bridge.old_version} -> @{bridge.new_version}, not "
                         f"{rubric_id}@{old} -> @{new}", field="bridge_id")


def record_decision(session: Session, rubric_id: str, old_version: int, new_version: int, *,
                    kind: str, reason: str, actor: str, question_id: str | None = None,
                    mapping: dict[str, str] | None = None, bridge_id: str | None = None
                    ) -> dict[str, Any]:
    """Record how labels of ``old_version`` may be used beside ``new_version``:
    ``mapping`` (translate old labels with ``mapping``), ``relabel`` (old labels are
    replaced by re-review under the new version), ``accept`` (the change is intended and
    old labels stand as they are), or ``withdraw`` (cancel the standing decision)."""
    _check_order(old_version, new_version)
    if kind not in DECISION_KINDS:
        raise InputError(f"kind must be one of {DECISION_KINDS}", field="kind")
    if not reason.strip():
        raise InputError("a decision needs a reason", field="reason")
    old_q = _choice_options(session, rubric_id, old_version)
    new_q = _choice_options(session, rubric_id, new_version)
    if kind == "mapping":
        if not mapping:
            raise InputError("a mapping decision needs the mapping old label -> new label",
                             field="mapping")
        if question_id is None:
            raise InputError("a mapping belongs to one question", field="question")
        if question_id not in old_q or question_id not in new_q:
            raise InputError(f"question {question_id!r} is not a single-choice question of "
                             "both versions", field="question")
        bad_old = sorted(set(mapping) - set(old_q[question_id]))
        bad_new = sorted(set(map(str, mapping.values())) - set(new_q[question_id]))
        if bad_old or bad_new:
            raise InputError(f"mapping names labels the versions do not have: old {bad_old}, "
                             f"new {bad_new}", field="mapping")
    else:
        _check_other_decision(session, rubric_id, old_version, new_version, kind=kind,
                              question_id=question_id, mapping=mapping)
    if bridge_id is not None:
        _check_bridge_of(session, bridge_id, rubric_id, old_version, new_version)
    row = RubricCompatDecisionRow(
        id="compat_" + uuid.uuid4().hex[:20], rubric_id=rubric_id, old_version=old_version,
        new_version=new_version, question_id=question_id, kind=kind,
        mapping={str(k): str(v) for k, v in (mapping or {}).items()}, reason=reason,
        bridge_id=bridge_id, decided_by=actor, decided_at=utcnow())
    session.add(row)
    session.flush()
    audit.append(session, actor=actor, action="rubric.compat_decision",
                 entity_type="rubric", entity_id=f"{rubric_id}@{old_version}->{new_version}",
                 payload={"decision_id": row.id, "kind": kind, "question_id": question_id,
                          "mapping": row.mapping, "reason": reason, "bridge_id": bridge_id})
    return {"decision_id": row.id, "kind": kind, "question_id": question_id,
            "mapping": row.mapping}


@dataclass
class Compatibility:
    rubric_id: str
    old_version: int
    new_version: int
    status: str
    """compatible | incompatible | unknown, from the bridge evidence alone."""
    mixable: bool
    """Whether labels of the two versions may go into one dataset (compatible, or a
    standing decision covers every question that is not)."""
    reason: str
    questions: dict[str, dict[str, Any]] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pair(session: Session, rubric_id: str, old: int, new: int) -> Compatibility:
    decisions = _current_decisions(session, rubric_id, old, new)
    bridges = session.execute(sa.select(BridgeSetRow).where(
        BridgeSetRow.rubric_id == rubric_id, BridgeSetRow.old_version == old,
        BridgeSetRow.new_version == new).order_by(BridgeSetRow.created_at)).scalars().all()
    questions: dict[str, dict[str, Any]] = {}
    for bridge in bridges:  # the newest bridge of a question wins
        status = bridge_status(session, bridge.id)
        matrix: dict[str, Any] = status["matrix"]
        questions[bridge.question_id] = {
            "bridge_id": bridge.id, "status": matrix["status"], "reason": matrix["reason"],
            "flagged": matrix["flagged"], "untestable": matrix["untestable"],
            "relabelled": status["relabelled"],
            "items": status["items"]}
    whole = decisions.get(None)
    covered = {q for q in decisions if q is not None}
    if not questions:
        status_, reason = UNKNOWN, "no bridge set between these versions"
        open_questions: list[str] = ["*"]
    else:
        states = {q["status"] for q in questions.values()}
        status_ = (INCOMPATIBLE if INCOMPATIBLE in states else UNKNOWN if UNKNOWN in states
                   else COMPATIBLE)
        reason = "; ".join(f"{q}: {v['reason']}" for q, v in sorted(questions.items()))
        open_questions = [q for q, v in questions.items() if v["status"] != COMPATIBLE]
    mixable = status_ == COMPATIBLE or whole is not None or (
        bool(questions) and all(q in covered for q in open_questions))
    listed = [{"question_id": d.question_id, "kind": d.kind, "mapping": d.mapping,
               "reason": d.reason, "decided_by": d.decided_by,
               "decided_at": d.decided_at.isoformat(), "decision_id": d.id}
              for d in decisions.values()]
    return Compatibility(rubric_id, old, new, status_, mixable, reason, questions, listed)


def bridge_compatibility(session: Session, rubric_id: str, old_version: int,
                         new_version: int) -> Compatibility:
    """Whether labels of two versions of a rubric may be mixed.

    A bridge (or decision) between exactly these versions answers directly. Otherwise
    the chain of consecutive versions between them is checked: incompatible if a link is
    incompatible and not covered by a decision, compatible if every link is, unknown
    otherwise. Order does not matter (``old_version`` > ``new_version`` is swapped).
    """
    old, new = sorted((old_version, new_version))
    if old == new:
        return Compatibility(rubric_id, old, new, COMPATIBLE, True, "same version")
    direct = _pair(session, rubric_id, old, new)
    if direct.questions or direct.decisions or new - old == 1:
        return direct
    # Walk the versions that exist, not every integer between: the ends may be far apart.
    published = list(session.execute(
        sa.select(RubricVersionRow.version).where(
            RubricVersionRow.rubric_id == rubric_id, RubricVersionRow.version >= old,
            RubricVersionRow.version <= new).order_by(RubricVersionRow.version)).scalars())
    if published[:1] != [old] or published[-1:] != [new]:
        return Compatibility(rubric_id, old, new, UNKNOWN, False,
                             "one of the versions is not published")
    links = [_pair(session, rubric_id, a, b) for a, b in zip(published, published[1:],
                                                              strict=False)]
    if all(link.status == COMPATIBLE for link in links):
        status, reason = COMPATIBLE, "every consecutive version pair is compatible"
    elif any(link.status == INCOMPATIBLE and not link.mixable for link in links):
        status, reason = INCOMPATIBLE, "; ".join(
            f"@{link.old_version}->@{link.new_version}: {link.reason}" for link in links
            if link.status == INCOMPATIBLE)
    else:
        status, reason = UNKNOWN, "; ".join(
            f"@{link.old_version}->@{link.new_version}: {link.status}" for link in links)
    mixable = all(link.mixable for link in links)
    return Compatibility(rubric_id, old, new, status, mixable, reason,
                         {f"@{link.old_version}->@{link.new_version}": link.as_dict()
                          for link in links})


def published_compatibility(session: Session, rubric_id: str, old_version: int,
                            new_version: int) -> Compatibility:
    """:func:`bridge_compatibility` of two published versions, as ``hilt drift compat``
    and the HTTP API answer it. A rubric or version that is not published is
    :class:`NotFound` naming it: answered, it would read as ``unknown`` (no bridge), or
    as ``compatible`` when both versions are the same."""
    for version in sorted({old_version, new_version}):
        if session.get(RubricVersionRow, (rubric_id, version)) is None:
            raise NotFound(f"rubric {rubric_id}@{version} is not published")
    return bridge_compatibility(session, rubric_id, old_version, new_version)


def compat_lookup(session: Session) -> Any:
    """``compat_lookup(rubric_id, old, new)`` for :func:`.transition.check_mixable`."""
    def lookup(rubric_id: str, old: int, new: int) -> Compatibility:
        return bridge_compatibility(session, rubric_id, old, new)

    return lookup

