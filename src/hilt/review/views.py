"""What a reviewer may see: the item and rubric of a task they hold, and their own reviews.

Blind review: nothing here reveals other reviewers' answers, how many reviews a task has,
whether it is a gold item, its severity or the rule that escalated it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.errors import NotFound
from hilt.review.blind import refuse_if_reviewing
from hilt.review.gold import held_back_by_pool
from hilt.review.reviews import cached_spec_json
from hilt.store.keyset import keyset
from hilt.store.tables.core import EventRow
from hilt.store.tables.review import AssignmentRow, ReviewRow, ReviewTaskRow

_TASK_VIEW = (
    sa.select(AssignmentRow.id, AssignmentRow.status, AssignmentRow.lease_expires_at,
              ReviewTaskRow.rubric_id, ReviewTaskRow.rubric_version, EventRow.payload)
    .join(ReviewTaskRow, ReviewTaskRow.id == AssignmentRow.task_id)
    .outerjoin(EventRow, EventRow.id == ReviewTaskRow.event_id)
    .where(AssignmentRow.task_id == sa.bindparam("task_id"),
           AssignmentRow.reviewer_id == sa.bindparam("reviewer_id")))


def reviewer_task_view(session: Session, task_id: str, reviewer_id: str) -> dict[str, Any]:
    """The task as its reviewer sees it (only while they hold or held a lease on it)."""
    # One statement: every next-task request ends here.
    row = session.connection().execute(
        _TASK_VIEW, {"task_id": task_id, "reviewer_id": reviewer_id}).first()
    if row is None:
        raise NotFound(f"task {task_id!r} is not assigned to you")
    return task_view(task_id, row.id, row.status, row.lease_expires_at, row.rubric_id,
                     row.rubric_version,
                     cached_spec_json(session, row.rubric_id, row.rubric_version),
                     row.payload)


def task_view(task_id: str, assignment_id: str, lease_status: str, expires: datetime,
              rubric_id: str, rubric_version: int, spec: dict[str, Any],
              payload: dict[str, Any] | None) -> dict[str, Any]:
    payload = payload or {}
    return {
        "task_id": task_id, "assignment_id": assignment_id, "lease_status": lease_status,
        "lease_expires_at": expires.isoformat(),
        "rubric": {"id": rubric_id, "version": rubric_version, "spec": spec},
        # An erased event's payload is ``{"erased": true}``: no interaction (null) and no
        # responses (an empty list, as in the case file; docs/review.md#erased-events).
        "item": {"interaction": payload.get("interaction"),
                 "responses": payload.get("responses") or []},
    }


# Newest first; reviews submitted at the same instant by id.
HISTORY_ORDER = keyset((ReviewRow.submitted_at, True), (ReviewRow.id, False))


def reviewer_history(session: Session, reviewer_id: str, *, limit: int = 50,
                     after: str | None = None) -> list[dict[str, Any]]:
    """A reviewer's own submitted reviews, newest first (those submitted at the same
    instant by id)."""
    return [history_view(r) for r in history_rows(session, reviewer_id, limit=limit,
                                                  after=after)]


def history_rows(session: Session, reviewer_id: str, *, limit: int = 50,
                 after: str | None = None) -> list[ReviewRow]:
    """The reviews :func:`reviewer_history` lists, in :data:`HISTORY_ORDER`; ``after``:
    the cursor of the previous page's last review (``HISTORY_ORDER.cursor``)."""
    q = sa.select(ReviewRow).where(ReviewRow.reviewer_id == reviewer_id)
    if after:
        q = q.where(HISTORY_ORDER.after(after))
    return list(session.execute(q.order_by(*HISTORY_ORDER.order_by()).limit(limit))
                .scalars())


def history_view(r: ReviewRow) -> dict[str, Any]:
    return {"review_id": r.id, "task_id": r.task_id,
            "rubric": f"{r.rubric_id}@{r.rubric_version}", "answers": r.answers,
            "confidence": r.confidence, "rationale": r.rationale, "late": r.late,
            "submitted_at": r.submitted_at.isoformat()}


def task_detail(session: Session, task_id: str, *, viewer: str | None = None
                ) -> dict[str, Any]:
    """The full record of a task, for leads: provenance, state, leases, labels (refused
    to a ``viewer`` who is reviewing the same item: :mod:`hilt.review.blind`)."""
    from hilt.review.triage import overdue_hours
    from hilt.store.tables.base import utcnow
    from hilt.store.tables.review import FinalLabelRow

    task = session.get(ReviewTaskRow, task_id)
    if task is None:
        raise NotFound(f"task {task_id!r} does not exist")
    refuse_if_reviewing(session, viewer, task.event_id, f"the record of task {task_id}")
    leases = session.execute(sa.select(AssignmentRow).where(AssignmentRow.task_id == task_id)
                             .order_by(AssignmentRow.claimed_at)).scalars()
    labels = session.execute(sa.select(FinalLabelRow).where(FinalLabelRow.task_id == task_id)
                             ).scalars()
    return {
        "task_id": task.id, "event_id": task.event_id, "status": task.status,
        "pool": task.pool, "severity": f"sev{task.severity}", "priority": task.priority,
        "rubric": f"{task.rubric_id}@{task.rubric_version}", "overlap_k": task.overlap_k,
        "reviews_done": task.reviews_done, "open_slots": task.open_slots,
        "is_gold": task.is_gold, "reach": task.reach, "cluster_id": task.cluster_id,
        "representative_id": task.representative_id,
        "sla_due_at": task.sla_due_at.isoformat(),
        "sla_breached_at": task.sla_breached_at.isoformat() if task.sla_breached_at else None,
        # an escalated task holds a later deadline: how late the work is comes from the
        # first deadline it missed
        "overdue_hours": overdue_hours(task.sla_due_at, task.sla_breached_at, utcnow()),
        "escalation": {"rule_set": task.rule_set_id, "version": task.rule_set_version,
                       "rule": task.rule_name, "matched": task.matched,
                       "sampling_probability": task.sampling_probability,
                       "level": task.escalation_level},
        "adjudication_reasons": task.adjudication_reasons,
        "leases": [{"assignment_id": a.id, "reviewer_id": a.reviewer_id, "status": a.status,
                    "lease_expires_at": a.lease_expires_at.isoformat()} for a in leases],
        "labels": [{"question_id": lb.question_id, "value": lb.value,
                    "provenance": lb.provenance, "confidence": lb.confidence,
                    "review_ids": lb.review_ids, "adjudication_id": lb.adjudication_id}
                   for lb in labels],
    }


def queue_stats(session: Session) -> dict[str, Any]:
    """Task counts per pool and status; ``gold_held_back`` beside them counts the pool's
    gold tasks (among ``gold``) that the queue does not serve (:mod:`hilt.review.gold`)."""
    t = ReviewTaskRow
    rows = session.execute(sa.select(t.pool, t.status, sa.func.count())
                           .group_by(t.pool, t.status)).all()
    out: dict[str, dict[str, int]] = {}
    for pool, status, n in rows:
        out.setdefault(pool, {})[status] = n
    for pool, n in held_back_by_pool(session).items():
        out.setdefault(pool, {})["gold_held_back"] = n
    return out
