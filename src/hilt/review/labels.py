"""Final labels: writing them with provenance, propagating them to near-duplicates, and
reading them back for data selection (:func:`iter_final_labels`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.review.audit_view import TEXT_KINDS, text_digest
from hilt.review.records import PROVENANCE_KINDS, FinalLabelRecord
from hilt.review.tasks import new_id
from hilt.store import audit
from hilt.store.tables.core import EventRow
from hilt.store.tables.review import FinalLabelRow, ReviewTaskRow


@dataclass(frozen=True)
class NewLabel:
    question_id: str
    question_kind: str
    value: Any
    provenance: str
    confidence: float
    review_ids: tuple[str, ...]
    adjudication_id: str | None = None


def finalize(session: Session, task: ReviewTaskRow, labels: Sequence[NewLabel], *,
             now: datetime, actor: str) -> int:
    """Write a task's final labels, mark it resolved, and propagate the labels to the
    members of its near-duplicate cluster. Returns the number of tasks resolved.

    A task resolved before (sent back to adjudication after a model refit) keeps its
    label rows: they are updated in place, with the copies propagated from it, so that
    label ids that datasets refer to stay valid.
    """
    policy_version = session.execute(sa.select(EventRow.policy_version).where(
        EventRow.id == task.event_id)).scalar_one_or_none()
    if task.resolved_at is not None:
        labels = _update_existing(session, task, labels, now)
    rows = [label_row(task.id, task.event_id, task.rubric_id, task.rubric_version, lbl,
                      lbl.provenance, None, policy_version, now) for lbl in labels]
    task.status, task.resolved_at = "resolved", now
    # Only a representative has members, and clustering sets its cluster_id to its own id.
    members = [] if task.cluster_id is None else session.execute(sa.select(ReviewTaskRow).where(
        ReviewTaskRow.cluster_id == task.id, ReviewTaskRow.representative_id == task.id,
        ReviewTaskRow.status == "clustered")).scalars().all()
    member_policy = dict(session.execute(sa.select(EventRow.id, EventRow.policy_version)
                                         .where(EventRow.id.in_([m.event_id for m in members])
                                                )).all()) if members else {}
    for m in members:
        rows += [label_row(m.id, m.event_id, task.rubric_id, task.rubric_version, lbl,
                           "cluster_propagated", task.id, member_policy.get(m.event_id), now)
                 for lbl in labels]
        m.status, m.resolved_at = "resolved", now
    if rows:
        session.execute(sa.insert(FinalLabelRow), rows)
    audit.append(session, actor=actor, action="task.resolve", entity_type="review_task",
                 entity_id=task.id, payload=resolve_payload(labels, [m.id for m in members]))
    return 1 + len(members)


def resolve_payload(labels: Sequence[NewLabel], propagated_to: list[str]) -> dict[str, Any]:
    """The ``task.resolve`` audit entry: each label (texts as digests) and the cluster
    members it was copied to."""
    return {"labels": {lbl.question_id: {"value": text_digest(lbl.value)
                                         if lbl.question_kind in TEXT_KINDS else lbl.value,
                                         "provenance": lbl.provenance,
                                         "confidence": lbl.confidence}
                       for lbl in labels},
            "propagated_to": propagated_to}


def _update_existing(session: Session, task: ReviewTaskRow, labels: Sequence[NewLabel],
                     now: datetime) -> list[NewLabel]:
    """Update the labels a task already has; returns the labels that still need rows."""
    f = FinalLabelRow
    existing = set(session.execute(sa.select(f.question_id).where(
        f.task_id == task.id, f.source_task_id.is_(None))).scalars())
    for lbl in labels:
        if lbl.question_id not in existing:
            continue
        common = {"value": lbl.value, "confidence": lbl.confidence,
                  "adjudication_id": lbl.adjudication_id, "decided_at": now}
        session.execute(sa.update(f).where(f.task_id == task.id,
                                           f.question_id == lbl.question_id)
                        .values(provenance=lbl.provenance, review_ids=list(lbl.review_ids),
                                **common))
        session.execute(sa.update(f).where(f.source_task_id == task.id,
                                           f.question_id == lbl.question_id).values(**common))
    return [lbl for lbl in labels if lbl.question_id not in existing]


def label_row(task_id: str, event_id: str, rubric_id: str, rubric_version: int,
              lbl: NewLabel, provenance: str, source_task_id: str | None,
              policy_version: str | None, now: datetime) -> dict[str, Any]:
    """A final-label row; the rubric is the deciding task's."""
    assert provenance in PROVENANCE_KINDS
    return {"id": new_id("lbl"), "task_id": task_id, "event_id": event_id,
            "rubric_id": rubric_id, "rubric_version": rubric_version,
            "question_id": lbl.question_id, "question_kind": lbl.question_kind,
            "value": lbl.value, "provenance": provenance, "confidence": lbl.confidence,
            "review_ids": list(lbl.review_ids), "adjudication_id": lbl.adjudication_id,
            "source_task_id": source_task_id, "policy_version": policy_version,
            "decided_at": now}


def iter_final_labels(session: Session, *, since: datetime | None = None,
                      until: datetime | None = None,
                      rubric_ids: Sequence[str] | None = None,
                      rubric_versions: Sequence[tuple[str, int]] | Sequence[int] | None = None,
                      provenance: Sequence[str] | None = None,
                      min_confidence: float | None = None,
                      after: tuple[datetime, str] | None = None,
                      batch: int = 2000) -> Iterator[FinalLabelRecord]:
    """Final labels in decision order (``decided_at``, then id), streamed in batches.

    ``since``/``until`` bound ``decided_at`` (half-open); ``rubric_versions`` takes
    ``(rubric_id, version)`` pairs or plain version numbers; ``after`` is a keyset
    cursor, the ``(decided_at, label_id)`` of the last label already read.
    """
    f = FinalLabelRow
    q = sa.select(f)
    if since is not None:
        q = q.where(f.decided_at >= since)
    if until is not None:
        q = q.where(f.decided_at < until)
    if rubric_ids:
        q = q.where(f.rubric_id.in_(list(rubric_ids)))
    if rubric_versions:
        pairs = [v for v in rubric_versions if isinstance(v, tuple)]
        plain = [v for v in rubric_versions if not isinstance(v, tuple)]
        conds = [sa.and_(f.rubric_id == r, f.rubric_version == v) for r, v in pairs]
        if plain:
            conds.append(f.rubric_version.in_(plain))
        q = q.where(sa.or_(*conds))
    if provenance:
        q = q.where(f.provenance.in_(list(provenance)))
    if min_confidence is not None:
        q = q.where(f.confidence >= min_confidence)
    last = after
    while True:
        page = q.order_by(f.decided_at, f.id).limit(batch)
        if last is not None:
            page = page.where(sa.or_(f.decided_at > last[0],
                                     sa.and_(f.decided_at == last[0], f.id > last[1])))
        rows = session.execute(page).scalars().all()
        if not rows:
            return
        sources = _sources(session, {r.source_task_id for r in rows if r.source_task_id})
        for r in rows:
            src_event, src_consent = sources.get(r.source_task_id or "", (None, None))
            yield FinalLabelRecord(
                label_id=r.id, event_id=r.event_id, task_id=r.task_id,
                rubric_id=r.rubric_id, rubric_version=r.rubric_version,
                question_id=r.question_id, question_kind=r.question_kind, value=r.value,
                provenance=r.provenance, confidence=r.confidence,
                review_ids=tuple(r.review_ids or ()), adjudication_id=r.adjudication_id,
                policy_version=r.policy_version, decided_at=r.decided_at,
                source_task_id=r.source_task_id, source_event_id=src_event,
                source_consent=src_consent)
        last = (rows[-1].decided_at, rows[-1].id)


def _sources(session: Session, task_ids: set[str]
             ) -> dict[str, tuple[str, frozenset[str]]]:
    """The event and its consent scopes of each task that labels were copied from."""
    if not task_ids:
        return {}
    rows = session.execute(
        sa.select(ReviewTaskRow.id, EventRow.id, EventRow.consent_scopes)
        .join(EventRow, EventRow.id == ReviewTaskRow.event_id)
        .where(ReviewTaskRow.id.in_(sorted(task_ids)))).all()
    return {task: (event, frozenset(s for s in (scopes or "").split(",") if s))
            for task, event, scopes in rows}
