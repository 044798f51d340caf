"""Submitting reviews: validation against the task's rubric version, lease checks, and
resolution once k reviews are in (final labels, or adjudication).

Late submissions: a reviewer whose lease lapsed may still submit while the task has a
free slot for them (their slot was not yet reclaimed, or another slot is free); otherwise
the submission is refused with a message saying so, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.errors import Conflict, InputError, NotFound
from hilt.review.aggregation import (
    AdjudicationPolicy,
    Aggregator,
    Answer,
    decide,
)
from hilt.review.labels import NewLabel, finalize
from hilt.review.rubric_spec import RubricSpec, clean_answers
from hilt.review.rubrics import rubric_spec
from hilt.review.tasks import new_id
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.review import AssignmentRow, ReviewRow, ReviewTaskRow


@dataclass(frozen=True)
class Submission:
    answers: dict[str, Any]
    confidence: float | None = None
    rationale: str | None = None
    rewrite: str | None = None
    time_spent_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubmitResult:
    review_id: str
    task_id: str
    late: bool
    task_status: str

    def as_dict(self) -> dict[str, Any]:
        return {"review_id": self.review_id, "task_id": self.task_id, "late": self.late,
                "task_status": self.task_status}


_SPECS: dict[tuple[str, int], RubricSpec] = {}


def cached_spec(session: Session, rubric_id: str, version: int) -> RubricSpec:
    """Published rubric versions never change, so their parsed specs are cached."""
    key = (rubric_id, version)
    if key not in _SPECS:
        _SPECS[key] = rubric_spec(session, rubric_id, version)
    return _SPECS[key]


def _check(sub: Submission) -> None:
    if sub.confidence is not None and not 0.0 <= sub.confidence <= 1.0:
        raise InputError("confidence must be in [0, 1]", field="confidence")
    if sub.time_spent_s is not None and sub.time_spent_s < 0:
        raise InputError("time spent must not be negative", field="time_spent_s")


def submit_review(session: Session, task_id: str, reviewer_id: str, submission: Submission,
                  *, now: datetime | None = None,
                  aggregator: Aggregator | None = None) -> SubmitResult:
    """Record one reviewer's answers; resolves the task when its k-th review arrives
    (with ``aggregator``, by default :func:`default_aggregator`)."""
    now = now or utcnow()
    _check(submission)
    found = session.execute(
        sa.select(AssignmentRow, ReviewTaskRow)
        .join(ReviewTaskRow, ReviewTaskRow.id == AssignmentRow.task_id)
        .where(AssignmentRow.task_id == task_id, AssignmentRow.reviewer_id == reviewer_id)
        .with_for_update(of=AssignmentRow)).first()
    if found is None:
        raise NotFound(f"task {task_id!r} was never assigned to {reviewer_id!r}; claim it "
                       "with next-task first")
    lease, task = found
    spec = cached_spec(session, task.rubric_id, task.rubric_version)
    answers = dict(submission.answers)
    rewrite_q = next((q.id for q in spec.questions if q.kind == "rewrite"), None)
    if rewrite_q and submission.rewrite and rewrite_q not in answers:
        answers[rewrite_q] = submission.rewrite
    clean = clean_answers(spec, answers, task.n_responses)
    late = _take_slot(session, lease, task, now)
    review_id = new_id("rev")
    session.add(ReviewRow(
        id=review_id, task_id=task_id, assignment_id=lease.id, reviewer_id=reviewer_id,
        rubric_id=task.rubric_id, rubric_version=task.rubric_version, answers=clean,
        confidence=submission.confidence, rationale=submission.rationale,
        rewrite=submission.rewrite, time_spent_s=submission.time_spent_s,
        is_gold=task.is_gold, late=late, submitted_at=now))
    lease.status, lease.finished_at = "submitted", now
    status = task.status
    if not task.is_gold:
        t = ReviewTaskRow
        session.flush()
        done, k, status = session.execute(
            sa.update(t).where(t.id == task_id).values(reviews_done=t.reviews_done + 1)
            .returning(t.reviews_done, t.overlap_k, t.status)
            .execution_options(synchronize_session=False)).one()
        if done >= k and status == "open":
            session.refresh(task)
            status = resolve(session, task, spec, now=now, aggregator=aggregator,
                             actor=reviewer_id)
    audit.append(session, actor=reviewer_id, action="review.submit", entity_type="review",
                 entity_id=review_id, payload={"task": task_id, "late": late,
                                               "rubric": f"{task.rubric_id}@"
                                                         f"{task.rubric_version}"})
    return SubmitResult(review_id, task_id, late, status)


def _take_slot(session: Session, lease: AssignmentRow, task: ReviewTaskRow, now: datetime
               ) -> bool:
    """Whether the submission is late; raises when no slot is left for it."""
    if lease.status == "submitted":
        raise Conflict(f"you already submitted a review for task {task.id}")
    if lease.status == "active":
        return lease.lease_expires_at <= now  # the slot is still held by this lease
    if task.is_gold:
        return True
    t = ReviewTaskRow
    taken = session.execute(sa.update(t).where(t.id == task.id, t.status == "open",
                                               t.open_slots > 0)
                            .values(open_slots=t.open_slots - 1).returning(t.id)
                            .execution_options(synchronize_session=False)).first()
    if not taken:
        when = (f"expired at {lease.lease_expires_at.isoformat()}"
                if lease.status == "expired" else "was released")
        raise Conflict(f"your lease on task {task.id} {when} and the task has since been "
                       "taken by other reviewers or resolved; your review was not recorded. "
                       "Claim a new task.")
    return True


def task_answers(session: Session, task_id: str
                 ) -> tuple[list[ReviewRow], dict[str, list[Answer]]]:
    reviews = session.execute(sa.select(ReviewRow).where(ReviewRow.task_id == task_id)
                              .order_by(ReviewRow.submitted_at, ReviewRow.id)).scalars().all()
    by_question: dict[str, list[Answer]] = {}
    for r in reviews:
        for qid, value in r.answers.items():
            by_question.setdefault(qid, []).append(Answer(r.id, r.reviewer_id, value,
                                                          r.confidence))
    return list(reviews), by_question


def default_aggregator(session: Session, task: ReviewTaskRow) -> Aggregator:
    """The workflow's aggregator for a task: the latest Dawid–Skene models fitted over
    the rubric's reviews (:func:`hilt.quality.store.task_aggregator`) for the questions
    and reviewers they cover, majority vote everywhere else (and before any fit)."""
    from hilt.quality.store import task_aggregator

    return task_aggregator(session, task.rubric_id, task.rubric_version)


def resolve(session: Session, task: ReviewTaskRow, spec: RubricSpec, *, now: datetime,
            aggregator: Aggregator | None = None, actor: str = "review") -> str:
    """Aggregate a task's reviews: final labels, or hand it to an adjudicator."""
    reviews, answers = task_answers(session, task.id)
    policy = AdjudicationPolicy.model_validate(task.policy or {})
    outcomes = decide(spec.questions, answers, task.severity, policy,
                      aggregator or default_aggregator(session, task))
    flagged = {o.question_id: o.reason for o in outcomes if o.adjudicate}
    if flagged:
        task.status = "needs_adjudication"
        task.adjudication_reasons = flagged
        audit.append(session, actor=actor, action="task.needs_adjudication",
                     entity_type="review_task", entity_id=task.id,
                     payload={"reasons": flagged, "reviews": [r.id for r in reviews]})
        return task.status
    finalize(session, task, labels_from(spec, outcomes, answers), now=now, actor=actor)
    return task.status


def labels_from(spec: RubricSpec, outcomes: Sequence[Any], answers: dict[str, list[Answer]],
                decided: dict[str, Any] | None = None, adjudication_id: str | None = None
                ) -> list[NewLabel]:
    """Final labels from aggregates, with an adjudicator's answers taking precedence."""
    decided = decided or {}
    by_id = {o.question_id: o for o in outcomes}
    labels = []
    for q in spec.questions:
        review_ids = tuple(a.review_id for a in answers.get(q.id, []))
        if q.id in decided:
            labels.append(NewLabel(q.id, q.kind, decided[q.id], "adjudicated", 1.0,
                                   review_ids, adjudication_id))
            continue
        outcome = by_id.get(q.id)
        if outcome is not None and outcome.aggregate is not None:
            agg = outcome.aggregate
            labels.append(NewLabel(q.id, q.kind, agg.value, agg.provenance, agg.confidence,
                                   review_ids))
    return labels
