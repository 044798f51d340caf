"""Erasing a data subject's content from the review stage's tables.

The right to be forgotten (:func:`hilt.data.forget.forget`) erases events; copies of
their content made during review must go too. For every review task of the given
events this removes:

- reviews: the rationale, the rewrite, and the answers to text questions (``free_text``
  and ``rewrite`` kinds of the task's rubric version);
- adjudications: the rationale (replaced by a fixed note, the column is required) and
  the answers to text questions;
- final labels of the events whose value is text (``free_text``, ``rewrite``): the
  value becomes ``{"erased": true}``;
- tasks: gold answers to text questions, and the values the escalation rules read from
  the event (``matched[*].values`` may hold quoted content).

Work still pending on the events stops: every task not yet resolved (``open``,
``clustered``, ``needs_adjudication``, ``gold``) becomes ``cancelled``, so it is never
claimed, reviewed, adjudicated or labelled again, and active leases on those tasks end
(status ``cancelled``). Near-duplicates that waited on a cancelled representative go back
to ``open`` to be reviewed on their own. One ``task.cancel`` audit entry names them all.

Rows, ids, choice answers, scores and label values that are not text stay, so
agreement statistics, lineage and the audit chain keep working. Runs in the caller's
transaction; returns how many rows of each kind changed.

Lock order (PostgreSQL). The caller has locked the events (``FOR UPDATE``); then the
active leases on their tasks are locked, and only then the tasks, as every path that
ends a lease takes them (a submission, :func:`hilt.review.queue.expire_leases`,
``release``): lease first, then its task. A submission also takes a share lock on its
task's event before anything else (:func:`hilt.review.reviews.submit_review`,
:mod:`hilt.review.pg_fast`), so a submission and an erasure of the same event never
wait on each other in a cycle. Whichever locks the event first goes first: a review
that committed before is erased here with the rest; one that waited for this erasure
finds its task cancelled and is refused (``Conflict``), writing nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.canonical import sha256_hex
from hilt.review.reviews import CANCELLED
from hilt.review.rubrics import rubric_spec
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.review import (
    AdjudicationRow,
    AssignmentRow,
    FinalLabelRow,
    ReviewRow,
    ReviewTaskRow,
)

TEXT_KINDS = frozenset({"free_text", "rewrite"})
ERASED_RATIONALE = "[erased: right to be forgotten]"
# Statuses of tasks that still expect work; erasure moves them to CANCELLED.
UNRESOLVED = frozenset({"open", "clustered", "needs_adjudication", "gold"})
_CHUNK = 500


def _text_questions(session: Session, cache: dict[tuple[str, int], frozenset[str]],
                    rubric_id: str, version: int) -> frozenset[str]:
    key = (rubric_id, version)
    if key not in cache:
        try:
            spec = rubric_spec(session, rubric_id, version)
            cache[key] = frozenset(q.id for q in spec.questions if q.kind in TEXT_KINDS)
        except Exception:  # an unknown rubric: no question is known to be non-text
            cache[key] = frozenset()
    return cache[key]


def _without(answers: dict[str, Any] | None, keys: frozenset[str]) -> dict[str, Any] | None:
    if not answers or not keys & set(answers):
        return None
    return {k: v for k, v in answers.items() if k not in keys}


def erase_subject_content(session: Session, event_ids: Sequence[str],
                          copied_labels: list[FinalLabelRow] | None = None, *,
                          actor: str = "forget", now: datetime | None = None
                          ) -> dict[str, int]:
    """Erase review-stage copies of the content of ``event_ids`` and cancel their pending
    tasks (see module docstring).

    Text labels that a cluster representative's review wrote onto other people's events
    (provenance ``cluster_propagated``, ``source_task_id`` one of these events' tasks)
    quote the same text: they are erased too, and appended to ``copied_labels`` so that
    the dataset versions holding them can be revoked."""
    counts = {"reviews": 0, "adjudications": 0, "final_labels": 0, "tasks": 0,
              "propagated_labels": 0}
    subject_tasks: list[str] = []
    pending: list[ReviewTaskRow] = []
    text_qs: dict[tuple[str, int], frozenset[str]] = {}
    ids = sorted(set(event_ids))
    _lock_leases(session, ids)
    for lo in range(0, len(ids), _CHUNK):
        chunk = ids[lo:lo + _CHUNK]
        tasks = list(session.execute(sa.select(ReviewTaskRow).where(
            ReviewTaskRow.event_id.in_(chunk)).with_for_update()).scalars())
        by_id = {t.id: t for t in tasks}
        subject_tasks.extend(by_id)
        for task in tasks:
            if task.status in UNRESOLVED:
                pending.append(task)
            texts = _text_questions(session, text_qs, task.rubric_id, task.rubric_version)
            changed = False
            gold = _without(task.gold_answers, texts)
            if gold is not None:
                task.gold_answers, changed = gold, True
            if any(m.get("values") for m in task.matched or []):
                task.matched = [{**m, "values": {}} for m in task.matched]
                changed = True
            counts["tasks"] += changed
        if by_id:
            for review in session.execute(sa.select(ReviewRow).where(
                    ReviewRow.task_id.in_(list(by_id))).with_for_update()).scalars():
                task = by_id[review.task_id]
                texts = _text_questions(session, text_qs, task.rubric_id,
                                        task.rubric_version)
                answers = _without(review.answers, texts)
                if answers is not None or review.rationale or review.rewrite:
                    if answers is not None:
                        review.answers = answers
                    review.rationale, review.rewrite = None, None
                    counts["reviews"] += 1
            for adj in session.execute(sa.select(AdjudicationRow).where(
                    AdjudicationRow.task_id.in_(list(by_id))).with_for_update()).scalars():
                task = by_id[adj.task_id]
                texts = _text_questions(session, text_qs, task.rubric_id,
                                        task.rubric_version)
                answers = _without(adj.answers, texts)
                if answers is not None or adj.rationale != ERASED_RATIONALE:
                    if answers is not None:
                        adj.answers = answers
                    adj.rationale = ERASED_RATIONALE
                    counts["adjudications"] += 1
        for label in session.execute(sa.select(FinalLabelRow).where(
                FinalLabelRow.event_id.in_(chunk),
                FinalLabelRow.question_kind.in_(sorted(TEXT_KINDS))).with_for_update()
                ).scalars():
            if label.value != {"erased": True}:
                label.value = {"erased": True}
                counts["final_labels"] += 1
    for lo in range(0, len(subject_tasks), _CHUNK):
        for label in session.execute(sa.select(FinalLabelRow).where(
                FinalLabelRow.source_task_id.in_(subject_tasks[lo:lo + _CHUNK]),
                FinalLabelRow.question_kind.in_(sorted(TEXT_KINDS))).with_for_update()
                ).scalars():
            if copied_labels is not None:
                copied_labels.append(label)
            if label.value != {"erased": True}:
                label.value = {"erased": True}
                counts["propagated_labels"] += 1
    counts.update(_cancel(session, pending, actor=actor, now=now or utcnow()))
    session.flush()
    return counts


def _lock_leases(session: Session, event_ids: list[str]) -> None:
    """Lock the active leases on the events' tasks before the tasks themselves (the
    order of every path that ends a lease; see the module docstring). A lease taken
    after this, and before the tasks are locked, is still ended by :func:`_cancel`."""
    a, t = AssignmentRow, ReviewTaskRow
    for lo in range(0, len(event_ids), _CHUNK):
        session.execute(sa.select(a.id).join(t, t.id == a.task_id).where(
            t.event_id.in_(event_ids[lo:lo + _CHUNK]), a.status == "active")
            .order_by(a.id).with_for_update(of=a)).all()


def _cancel(session: Session, tasks: list[ReviewTaskRow], *, actor: str, now: datetime
            ) -> dict[str, int]:
    """Cancel the erased events' pending tasks, end their leases and free the
    near-duplicates they represented; one audit entry."""
    if not tasks:
        return {"tasks_cancelled": 0, "leases_ended": 0, "tasks_unclustered": 0}
    ids = [t.id for t in tasks]
    for task in tasks:
        task.status, task.open_slots = CANCELLED, 0
    session.flush()
    a, t = AssignmentRow, ReviewTaskRow
    leases: list[Any] = []
    members: list[ReviewTaskRow] = []
    for lo in range(0, len(ids), _CHUNK):
        chunk = ids[lo:lo + _CHUNK]
        leases += session.execute(
            sa.update(a).where(a.task_id.in_(chunk), a.status == "active")
            .values(status=CANCELLED, finished_at=now)
            .returning(a.id, a.task_id, a.reviewer_id)
            .execution_options(synchronize_session=False)).all()
        # Members wait for their representative's decision, which will now never come.
        members += session.execute(sa.select(t).where(
            t.representative_id.in_(chunk), t.status == "clustered")
            .with_for_update()).scalars()
    for member in members:
        member.status, member.cluster_id, member.representative_id = "open", None, None
        member.open_slots, member.reach = member.overlap_k - member.reviews_done, 1
    audit.append(session, actor=actor, action="task.cancel", entity_type="review_task",
                 entity_id=ids[0] if len(ids) == 1 else "batch:" + sha256_hex(
                     "\n".join(ids))[:16],
                 payload={"reason": "event erased", "tasks": ids,
                          "leases_ended": [[r.id, r.task_id, r.reviewer_id] for r in leases],
                          "unclustered": [m.id for m in members]})
    return {"tasks_cancelled": len(ids), "leases_ended": len(leases),
            "tasks_unclustered": len(members)}
