"""Submitting reviews: validation against the task's rubric version, lease checks, and
resolution once k reviews are in (final labels, or adjudication).

Late submissions: a reviewer whose lease lapsed may still submit while the task has a
free slot for them (their slot was not yet reclaimed, or another slot is free); otherwise
the submission is refused with a message saying so, and nothing is written.

Erased events: a submission to a task whose event was erased (the task cancelled) is
refused (``Conflict``, "task … was cancelled") and writes nothing. One that races the
erasure either commits first, and its review is then erased with the rest of the
subject's content (:mod:`hilt.review.erasure`), or waits for the erasure on the event's
lock, which it takes before any other, and is refused.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.errors import Conflict, InputError, NotFound
from hilt.review.aggregation import (
    AdjudicationPolicy,
    Aggregator,
    Answer,
    decide,
)
from hilt.review.labels import NewLabel, finalize
from hilt.review.queue import check_may_work
from hilt.review.rubric_spec import RubricSpec, clean_answers
from hilt.review.rubrics import rubric_spec
from hilt.review.tasks import new_id
from hilt.review.text_checks import RATIONALE_MAX, TEXT_MAX, check_length, refuse_nul
from hilt.store import audit
from hilt.store.db import session_factory
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import EventRow
from hilt.store.tables.review import AssignmentRow, ReviewRow, ReviewTaskRow

# The status of a task whose event was erased (set by hilt.review.erasure).
CANCELLED = "cancelled"


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


# Parsed specs of published rubric versions, which never change within one database.
# Kept per engine (one database), never process-wide: a process that opens several
# databases (the Python API, tests, a benchmark beside its server) may find a different
# "harm" version 1 in each. The weak keys let a disposed engine's cache go with it.
_SPECS: weakref.WeakKeyDictionary[Engine, dict[tuple[str, int], RubricSpec]] = \
    weakref.WeakKeyDictionary()
_SPEC_JSON: weakref.WeakKeyDictionary[Engine, dict[tuple[str, int], dict[str, Any]]] = \
    weakref.WeakKeyDictionary()


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def cached_spec(session: Session, rubric_id: str, version: int) -> RubricSpec:
    """Published rubric versions never change, so their parsed specs are cached."""
    specs = _SPECS.setdefault(_engine_of(session), {})
    key = (rubric_id, version)
    if key not in specs:
        specs[key] = rubric_spec(session, rubric_id, version)
    return specs[key]


def spec_if_cached(engine: Engine, rubric_id: str, version: int) -> RubricSpec | None:
    return _SPECS.get(engine, {}).get((rubric_id, version))


def engine_spec(engine: Engine, rubric_id: str, version: int) -> RubricSpec:
    """:func:`cached_spec` for callers without a session (one is opened on a miss only)."""
    spec = spec_if_cached(engine, rubric_id, version)
    if spec is None:
        with session_factory(engine)() as session:
            spec = cached_spec(session, rubric_id, version)
    return spec


def cached_spec_json(session: Session, rubric_id: str, version: int) -> dict[str, Any]:
    """The spec as JSON, dumped once per version (every task view sends it)."""
    dumped = _SPEC_JSON.setdefault(_engine_of(session), {})
    key = (rubric_id, version)
    if key not in dumped:
        dumped[key] = cached_spec(session, rubric_id, version).model_dump(mode="json")
    return dumped[key]


def engine_spec_json(engine: Engine, rubric_id: str, version: int) -> dict[str, Any]:
    """:func:`cached_spec_json` for callers without a session (one is opened on a miss)."""
    spec = _SPEC_JSON.get(engine, {}).get((rubric_id, version))
    if spec is None:
        with session_factory(engine)() as session:
            spec = cached_spec_json(session, rubric_id, version)
    return spec


def _check(sub: Submission) -> None:
    check_length(sub.rationale, "rationale", RATIONALE_MAX)
    refuse_nul(sub.rationale, "rationale")
    refuse_nul(sub.rewrite, "rewrite")
    if sub.confidence is not None and not 0.0 <= sub.confidence <= 1.0:
        raise InputError("confidence must be in [0, 1]", field="confidence")
    if sub.time_spent_s is not None and not (math.isfinite(sub.time_spent_s)
                                             and sub.time_spent_s >= 0):
        raise InputError("time spent must be a finite number of seconds ≥ 0",
                         field="time_spent_s")


def measured_time_spent(given: float | None, claimed_at: datetime, now: datetime
                        ) -> float | None:
    """The time spent a review records: the reviewer's figure, but at most the time since
    they claimed the task. The figure is measured by the page (or the client); one larger
    than the time the reviewer can have had is no measurement, and would skew every
    average of the time reviews take."""
    if given is None:
        return None
    return min(given, max(0.0, (now - claimed_at).total_seconds()))


# Taken before any other lock of a submission: the erasure locks the event first
# (FOR UPDATE), so a submission and an erasure of the same event never wait on each
# other in a cycle (see hilt.review.erasure). A submission that waited reads the
# erasure's outcome (the event erased, its task cancelled) and is refused. KEY SHARE,
# the weakest lock: submissions to one event never wait on each other, nor on an
# update of the event that leaves its id alone; only the erasure's FOR UPDATE waits.
_EVENT_LOCK = (sa.select(EventRow.id)
               .join(ReviewTaskRow, ReviewTaskRow.event_id == EventRow.id)
               .where(ReviewTaskRow.id == sa.bindparam("task_id"))
               .with_for_update(of=EventRow, read=True, key_share=True))

_FOUND = (sa.select(AssignmentRow.id.label("lease_id"), AssignmentRow.status.label("lease"),
                   AssignmentRow.lease_expires_at, AssignmentRow.claimed_at,
                   ReviewTaskRow.is_gold,
                   ReviewTaskRow.rubric_id, ReviewTaskRow.rubric_version,
                   ReviewTaskRow.n_responses, ReviewTaskRow.status.label("task_status"),
                   EventRow.erased_at)
          .join(ReviewTaskRow, ReviewTaskRow.id == AssignmentRow.task_id)
          .outerjoin(EventRow, EventRow.id == ReviewTaskRow.event_id)
          .where(AssignmentRow.task_id == sa.bindparam("task_id"),
                 AssignmentRow.reviewer_id == sa.bindparam("reviewer_id"))
          .with_for_update(of=AssignmentRow))


def submit_review(session: Session, task_id: str, reviewer_id: str, submission: Submission,
                  *, now: datetime | None = None,
                  aggregator: Aggregator | None = None) -> SubmitResult:
    """Record one reviewer's answers; resolves the task when its k-th review arrives
    (with ``aggregator``, by default :func:`default_aggregator`)."""
    now = now or utcnow()
    _check(submission)
    check_may_work(session, reviewer_id)
    conn = session.connection()
    conn.execute(_EVENT_LOCK, {"task_id": task_id}).all()
    found = conn.execute(_FOUND, {"task_id": task_id, "reviewer_id": reviewer_id}).first()
    if found is None:
        raise NotFound(f"task {task_id!r} was never assigned to {reviewer_id!r}; claim it "
                       "with next-task first")
    if (found.erased_at is not None or found.task_status == CANCELLED
            or found.lease == CANCELLED):
        # Labels must never be written on erased content (see hilt.review.erasure).
        raise Conflict(f"task {task_id} was cancelled: its event was erased; your review "
                       "was not recorded. Claim a new task.")
    spec = cached_spec(session, found.rubric_id, found.rubric_version)
    clean = clean_submission(spec, submission, found.n_responses)
    late = _take_slot(session, found, task_id, now)
    submission = replace(submission, time_spent_s=measured_time_spent(
        submission.time_spent_s, found.claimed_at, now))
    review, entry = review_record(task_id, reviewer_id, submission, clean, now=now,
                                  assignment_id=found.lease_id, rubric_id=found.rubric_id,
                                  rubric_version=found.rubric_version,
                                  is_gold=found.is_gold, late=late)
    counted = _record(session, review, entry)
    status = "gold"  # gold tasks stay claimable; their reviews are not counted
    if counted is not None:
        done, k, status = counted
        if done >= k and status == "open":
            task = session.get_one(ReviewTaskRow, task_id, populate_existing=True)
            status = resolve(session, task, spec, now=now, aggregator=aggregator,
                             actor=reviewer_id)
    return SubmitResult(review["id"], task_id, late, status)


def clean_submission(spec: RubricSpec, submission: Submission, n_responses: int
                     ) -> dict[str, Any]:
    """The answers checked against the rubric version; raises InputError before
    anything is written.

    A rewrite given beside the answers is checked as the rubric's rewrite question
    checks its answer (its ``max_length``), and fills that question when the answers
    leave it out; when they answer it too, both must be the same text (the review
    stores the one beside the answers, the label is made from the answer; an empty
    one beside them counts as none). Without a
    rewrite question in the rubric it may hold at most :data:`TEXT_MAX` characters."""
    _check(submission)
    answers = dict(submission.answers)
    rewrite_q = next((q for q in spec.questions if q.kind == "rewrite"), None)
    rewrite = submission.rewrite
    if rewrite is not None and rewrite_q is None:
        check_length(rewrite, "rewrite", TEXT_MAX)
    elif rewrite is not None and rewrite_q is not None:
        try:
            rewrite_q.check_answer(rewrite, n_responses)
        except ValueError as exc:
            raise InputError(str(exc), field="rewrite") from None
        if rewrite and rewrite_q.id in answers and answers[rewrite_q.id] != rewrite:
            raise InputError(f"differs from the answer to the rewrite question "
                             f"'answers.{rewrite_q.id}'; send the rewrite once, or the "
                             "same text in both", field="rewrite")
        if rewrite and rewrite_q.id not in answers:
            answers[rewrite_q.id] = rewrite
    return clean_answers(spec, answers, n_responses)


def review_record(task_id: str, reviewer_id: str, submission: Submission,
                  clean: dict[str, Any], *, now: datetime, assignment_id: str | None,
                  rubric_id: str, rubric_version: int, is_gold: bool, late: bool
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The review row and its audit entry."""
    review = {
        "id": new_id("rev"), "task_id": task_id, "assignment_id": assignment_id,
        "reviewer_id": reviewer_id, "rubric_id": rubric_id,
        "rubric_version": rubric_version, "answers": clean,
        "confidence": submission.confidence, "rationale": submission.rationale,
        "rewrite": submission.rewrite, "time_spent_s": submission.time_spent_s,
        "is_gold": is_gold, "late": late, "submitted_at": now}
    entry = {"actor": reviewer_id, "action": "review.submit", "entity_type": "review",
             "payload": {"task": task_id, "late": late,
                         "rubric": f"{rubric_id}@{rubric_version}"}}
    return review, entry


def resolve_if_complete(session: Session, task_id: str, *, now: datetime,
                        aggregator: Aggregator | None = None, actor: str = "review") -> str:
    """Resolve an open task once its k reviews are in (its row locked, so that two
    callers — the submitter and the sweep — never both resolve it); returns its status."""
    task = session.get_one(ReviewTaskRow, task_id, with_for_update=True,
                           populate_existing=True)
    if task.status == "open" and not task.is_gold and task.reviews_done >= task.overlap_k:
        spec = cached_spec(session, task.rubric_id, task.rubric_version)
        return resolve(session, task, spec, now=now, aggregator=aggregator, actor=actor)
    return task.status


def _record(session: Session, review: dict[str, Any], entry: dict[str, Any]
            ) -> tuple[int, int, str] | None:
    """Write the review; returns the task's (reviews done, k, status), None for gold.
    (The common case on PostgreSQL is one statement: :mod:`hilt.review.pg_fast`.)"""
    session.execute(sa.insert(ReviewRow), review)
    session.execute(sa.update(AssignmentRow).where(AssignmentRow.id == review["assignment_id"])
                    .values(status="submitted", finished_at=review["submitted_at"]))
    audit.append(session, entity_id=review["id"], **entry)
    if review["is_gold"]:
        return None
    t = ReviewTaskRow
    done, k, status = session.execute(
        sa.update(t).where(t.id == review["task_id"]).values(reviews_done=t.reviews_done + 1)
        .returning(t.reviews_done, t.overlap_k, t.status)
        .execution_options(synchronize_session=False)).one()
    return done, k, status


def _take_slot(session: Session, found: Any, task_id: str, now: datetime) -> bool:
    """Whether the submission is late; raises when no slot is left for it."""
    if found.lease == "submitted":
        raise Conflict(f"you already submitted a review for task {task_id}")
    if found.lease == "active":
        return bool(found.lease_expires_at <= now)  # the slot is still held by this lease
    if found.is_gold:
        return True
    t = ReviewTaskRow
    taken = session.execute(sa.update(t).where(t.id == task_id, t.status == "open",
                                               t.open_slots > 0)
                            .values(open_slots=t.open_slots - 1).returning(t.id)
                            .execution_options(synchronize_session=False)).first()
    if not taken:
        when = (f"expired at {found.lease_expires_at.isoformat()}"
                if found.lease == "expired" else "was released")
        raise Conflict(f"your lease on task {task_id} {when} and the task has since been "
                       "taken by other reviewers or resolved; your review was not recorded. "
                       "Claim a new task.")
    return True


def task_answers(session: Session, task_id: str
                 ) -> tuple[list[ReviewRow], dict[str, list[Answer]]]:
    reviews = session.execute(sa.select(ReviewRow).where(ReviewRow.task_id == task_id)
                              .order_by(ReviewRow.submitted_at, ReviewRow.id)).scalars().all()
    _, by_question = answers_by_question(
        (r.id, r.reviewer_id, r.answers, r.confidence) for r in reviews)
    return list(reviews), by_question


def answers_by_question(reviews: Iterable[Sequence[Any]]
                        ) -> tuple[list[Answer], dict[str, list[Answer]]]:
    """The panel (one entry per review, its value unused: see
    :func:`hilt.review.aggregation.decide`) and every question's answers, from ``(review
    id, reviewer id, answers, confidence)`` rows in submission order."""
    panel: list[Answer] = []
    by_question: dict[str, list[Answer]] = {}
    for rid, reviewer, answers, confidence in reviews:
        panel.append(Answer(rid, reviewer, None, confidence))
        for qid, value in (answers or {}).items():
            by_question.setdefault(qid, []).append(Answer(rid, reviewer, value, confidence))
    return panel, by_question


_ANSWERS = (sa.select(ReviewRow.id, ReviewRow.reviewer_id, ReviewRow.answers,
                      ReviewRow.confidence)
            .where(ReviewRow.task_id == sa.bindparam("task_id"))
            .order_by(ReviewRow.submitted_at, ReviewRow.id))


def _answers(session: Session, task_id: str
             ) -> tuple[list[Answer], dict[str, list[Answer]]]:
    # Core rows, no ORM objects: every k-th review resolves a task.
    return answers_by_question(session.connection().execute(_ANSWERS, {"task_id": task_id}))


def default_aggregator(session: Session, task: ReviewTaskRow) -> Aggregator:
    """The workflow's aggregator for a task: the latest Dawid–Skene models fitted over
    the rubric's reviews (:func:`hilt.quality.store.task_aggregator`) for the questions
    and reviewers they cover, majority vote everywhere else (and before any fit)."""
    from hilt.quality.store import task_aggregator

    return task_aggregator(session, task.rubric_id, task.rubric_version)


def resolve(session: Session, task: ReviewTaskRow, spec: RubricSpec, *, now: datetime,
            aggregator: Aggregator | None = None, actor: str = "review") -> str:
    """Aggregate a task's reviews: final labels, or hand it to an adjudicator."""
    panel, answers = _answers(session, task.id)
    review_ids = [a.review_id for a in panel]
    policy = AdjudicationPolicy.model_validate(task.policy or {})
    outcomes = decide(spec.questions, answers, task.severity, policy,
                      aggregator or default_aggregator(session, task), panel=panel)
    flagged = {o.question_id: o.reason for o in outcomes if o.adjudicate}
    if flagged:
        task.status = "needs_adjudication"
        task.adjudication_reasons = flagged
        audit.append(session, actor=actor, action="task.needs_adjudication",
                     entity_type="review_task", entity_id=task.id,
                     payload={"reasons": flagged, "reviews": review_ids})
        return task.status
    finalize(session, task, labels_from(spec, outcomes, answers), now=now, actor=actor)
    return task.status


def labels_from(spec: RubricSpec, outcomes: Sequence[Any], answers: dict[str, list[Answer]],
                decided: dict[str, Any] | None = None, adjudication_id: str | None = None
                ) -> list[NewLabel]:
    """Final labels from aggregates, with an adjudicator's answers taking precedence.
    A label names the reviews its question was decided over (for a checklist, every
    review: an unticked one selected nothing)."""
    decided = decided or {}
    by_id = {o.question_id: o for o in outcomes}
    labels = []
    for q in spec.questions:
        outcome = by_id.get(q.id)
        review_ids = (outcome.review_ids if outcome is not None and outcome.review_ids
                      else tuple(a.review_id for a in answers.get(q.id, [])))
        if q.id in decided:
            labels.append(NewLabel(q.id, q.kind, decided[q.id], "adjudicated", 1.0,
                                   review_ids, adjudication_id))
            continue
        if outcome is not None and outcome.aggregate is not None:
            agg = outcome.aggregate
            labels.append(NewLabel(q.id, q.kind, agg.value, agg.provenance, agg.confidence,
                                   review_ids))
    return labels
