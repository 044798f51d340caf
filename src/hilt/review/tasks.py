"""Creating review tasks: from escalation matches, by hand, and gold (calibration) items.

Task statuses: ``open`` (claimable while it has free slots), ``clustered`` (waits for its
representative's decision), ``needs_adjudication``, ``resolved``; gold tasks are
``gold`` (claimable by any number of reviewers, once each, never resolved). Erasing the
event ends any of these but ``resolved`` as ``cancelled`` (:mod:`hilt.review.erasure`).

Creating a task by hand (:func:`create_task`) or a gold item (:func:`create_gold_task`)
is refused (:class:`~hilt.errors.Conflict`, naming the task) while the event already has
a task of the same kind under the same rubric version that still takes reviews (``open``;
a gold item: ``gold``): a client retrying a create that timed out would otherwise double
the review work. A task waiting for adjudication or clustered, resolved or cancelled
blocks nothing: a new task then is a deliberate re-review. Escalation and drift bridges
make their tasks through :func:`insert_tasks` under their own rules and are not
affected.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.canonical import sha256_hex
from hilt.errors import Conflict, InputError, NotFound
from hilt.review.aggregation import AdjudicationPolicy
from hilt.review.rubric_spec import RubricSpec, clean_answers
from hilt.review.rubrics import get_version, parse_ref, spec_of
from hilt.review.rules import DEFAULT_SLA_HOURS, MAX_OVERLAP, SEVERITIES, check_sla_hours
from hilt.review.text_checks import check_name, check_names, refuse_nul
from hilt.review.triage import TriageConfig, priority
from hilt.store import audit
from hilt.store.tables.base import as_utc, utcnow
from hilt.store.tables.core import EventRow
from hilt.store.tables.review import FinalLabelRow, ReviewTaskRow

# Where new ids come from: random by default. Task ids break the queue's last ties (equal
# priority, deadline and age), so a run that must be reproducible (the seeded demo)
# installs its own source.
_ID_SOURCE: ContextVar[Callable[[], str] | None] = ContextVar("hilt_id_source",
                                                               default=None)


def new_id(prefix: str) -> str:
    source = _ID_SOURCE.get()
    return f"{prefix}_{(source() if source is not None else uuid.uuid4().hex)[:20]}"


@contextmanager
def id_source(source: Callable[[], str]) -> Iterator[None]:
    """Within the block, :func:`new_id` takes its hex digits from ``source()`` (at least
    20 characters); the previous source is restored afterwards."""
    token = _ID_SOURCE.set(source)
    try:
        yield
    finally:
        _ID_SOURCE.reset(token)


def task_row(*, event_id: str, pool: str, severity: int, rubric_id: str, rubric_version: int,
             overlap_k: int, now: datetime, n_responses: int = 1,
             sla_hours: float | None = None,
             uncertainty: float = 0.0, skills: list[str] | None = None,
             policy: dict[str, Any] | None = None, provenance: dict[str, Any] | None = None,
             config: TriageConfig = TriageConfig()) -> dict[str, Any]:
    """The column values of a new open task (plain dict, for bulk inserts)."""
    now = as_utc(now)  # the deadline is now plus hours: in UTC, whatever the caller's zone
    hours = sla_hours if sla_hours is not None else DEFAULT_SLA_HOURS[severity]
    prov = provenance or {}
    return {
        "id": new_id("task"), "event_id": event_id, "status": "open", "pool": pool,
        "required_skills": sorted(skills or []), "severity": severity,
        "rubric_id": rubric_id, "rubric_version": rubric_version, "overlap_k": overlap_k,
        "n_responses": n_responses, "open_slots": overlap_k, "reviews_done": 0,
        "is_gold": False, "gold_answers": None,
        "priority": priority(severity, hours, uncertainty, 1, config),
        "uncertainty": uncertainty, "reach": 1, "cluster_id": None,
        "representative_id": None, "sla_due_at": now + timedelta(hours=hours),
        "sla_breached_at": None, "escalation_level": 0,
        "rule_set_id": prov.get("rule_set_id"), "rule_set_version": prov.get("version"),
        "rule_name": prov.get("rule"), "matched": prov.get("matched", []),
        "sampling_probability": prov.get("sampling_probability", 1.0),
        "policy": policy or AdjudicationPolicy().model_dump(),
        "adjudication_reasons": None, "created_at": now,
        "resolved_at": None,
    }


def insert_tasks(session: Session, rows: list[dict[str, Any]], *, actor: str,
                 action: str, payload: dict[str, Any]) -> None:
    """Bulk-insert tasks with one audit entry naming them all."""
    if not rows:
        return
    session.execute(sa.insert(ReviewTaskRow), rows)
    ids = [r["id"] for r in rows]
    audit.append(session, actor=actor, action=action, entity_type="review_task",
                 entity_id=ids[0] if len(ids) == 1 else "batch:" + sha256_hex(
                     "\n".join(ids))[:16],
                 payload={**payload, "tasks": [[r["id"], r["event_id"]] for r in rows]})


def _event(session: Session, event_id: str) -> EventRow:
    """The event to show reviewers: it exists, is not erased, and its subject consented
    to human review.

    The row is locked (on PostgreSQL; SQLite serialises writers) until the transaction
    ends, so that two creates on one event do not both miss the other's task
    (:func:`refuse_duplicate`), and an erasure, which locks the event first too, waits."""
    row = session.get(EventRow, event_id, with_for_update=True)
    if row is None:
        raise NotFound(f"event {event_id!r} does not exist")
    if row.erased_at is not None:
        raise Conflict(f"event {event_id} was erased")
    if ",review," not in (row.consent_scopes or ""):
        raise Conflict(f"event {event_id} has no consent to human review "
                       "(context.consent lacks 'review')")
    return row


def reviewable_task(session: Session, *, event_id: str, rubric_id: str, version: int,
                    gold: bool) -> str | None:
    """The id of the event's oldest task under ``rubric_id@version`` that still takes
    reviews: ``gold`` for a gold item (``gold``), else ``open``; None when there is
    none."""
    t = ReviewTaskRow
    return session.execute(
        sa.select(t.id).where(t.event_id == event_id, t.rubric_id == rubric_id,
                              t.rubric_version == version, t.is_gold.is_(gold),
                              t.status == ("gold" if gold else "open"))
        .order_by(t.created_at, t.id).limit(1)).scalar_one_or_none()


def refuse_duplicate(session: Session, *, event_id: str, rubric_id: str, version: int,
                     gold: bool) -> None:
    """Refuse (:class:`Conflict`, naming the task) a second task of the same kind on one
    event under one rubric version while the first still takes reviews: the same item
    would be reviewed twice over. Once its reviews are in (waiting for adjudication or
    clustered, resolved, cancelled) a new task is a deliberate re-review."""
    existing = reviewable_task(session, event_id=event_id, rubric_id=rubric_id,
                               version=version, gold=gold)
    if existing is not None:
        kind, status = ("gold item", "gold") if gold else ("task", "open")
        raise Conflict(
            f"event {event_id!r} already has {kind} {existing} under rubric "
            f"{rubric_id}@{version}, still {status}; a second one would send the item "
            f"to review twice. Use {existing} (a create sent again after a timeout made "
            "it), or create another once it no longer takes reviews")


def severity_of(name: str) -> int:
    if name not in SEVERITIES:
        raise InputError(f"severity must be one of {SEVERITIES}", field="severity")
    return SEVERITIES.index(name)


# Question kinds that compare the event's responses: with fewer than two responses a
# required one can never be answered, so every submission of the task would be refused.
COMPARING_KINDS = ("preference", "ranking")


def unanswerable_questions(spec: RubricSpec, n_responses: int) -> list[str]:
    """Ids of the rubric's required questions that an item with ``n_responses``
    responses cannot answer (empty when the rubric fits the item)."""
    if n_responses >= 2:
        return []
    return [q.id for q in spec.questions if q.required and q.kind in COMPARING_KINDS]


def refuse_unanswerable(spec: RubricSpec, n_responses: int, *, event_id: str,
                        rubric: str) -> None:
    """Refuse a task that could never be submitted (see :func:`unanswerable_questions`)."""
    questions = unanswerable_questions(spec, n_responses)
    if questions:
        raise InputError(
            f"event {event_id!r} has {n_responses} response(s) but rubric {rubric} "
            f"requires comparing at least 2 (questions {', '.join(questions)}); no "
            "reviewer could ever submit this task: use a rubric without required "
            "preference or ranking questions", field="rubric")


def create_task(session: Session, *, event_id: str, rubric: str, actor: str,
                severity: str = "sev2", pool: str = "default", overlap_k: int = 3,
                sla_hours: float | None = None, skills: list[str] | None = None,
                policy: AdjudicationPolicy | None = None, now: datetime | None = None
                ) -> str:
    """Send one stored event to review by hand (not through an escalation rule).

    Refused (:class:`Conflict`) while the event has an open task under the same rubric
    version (:func:`refuse_duplicate`)."""
    check_name(pool, "pool")
    skills = check_names(skills or [], "skills")
    refuse_nul(event_id, "event_id")
    refuse_nul(rubric, "rubric")
    check_sla_hours(sla_hours)
    level = severity_of(severity)
    event = _event(session, event_id)
    if not 1 <= overlap_k <= MAX_OVERLAP:
        raise InputError(f"overlap must be 1 to {MAX_OVERLAP} reviewers", field="overlap")
    version = get_version(session, *parse_ref(rubric))
    n_responses = len((event.payload or {}).get("responses") or [])
    refuse_unanswerable(spec_of(version), n_responses, event_id=event_id,
                        rubric=f"{version.rubric_id}@{version.version}")
    refuse_duplicate(session, event_id=event_id, rubric_id=version.rubric_id,
                     version=version.version, gold=False)
    row = task_row(event_id=event_id, pool=pool, severity=level,
                   rubric_id=version.rubric_id, rubric_version=version.version,
                   overlap_k=overlap_k, now=now or utcnow(), sla_hours=sla_hours,
                   n_responses=n_responses,
                   skills=skills, policy=(policy or AdjudicationPolicy()).model_dump(),
                   provenance={"rule": "manual", "matched": [{"rule": "manual",
                                                              "by": actor}]})
    insert_tasks(session, [row], actor=actor, action="task.create",
                 payload={"rule": "manual"})
    return str(row["id"])


def create_gold_task(session: Session, *, event_id: str, rubric: str,
                     answers: dict[str, Any], actor: str, pool: str = "default",
                     now: datetime | None = None) -> str:
    """A calibration item with known answers. It looks like any other task to reviewers;
    its known answers become final labels with provenance ``gold``.

    Refused (:class:`Conflict`) while the event has a gold item under the same rubric
    version that is not cancelled (:func:`refuse_duplicate`)."""
    check_name(pool, "pool")
    refuse_nul(event_id, "event_id")
    refuse_nul(rubric, "rubric")
    event = _event(session, event_id)
    version = get_version(session, *parse_ref(rubric))
    spec = spec_of(version)
    n_responses = len((event.payload or {}).get("responses") or [])
    clean = clean_answers(spec, answers, n_responses, where="gold answers")
    # A checklist left unticked selected nothing, as in a review (see
    # hilt.review.aggregation): the known answer is the empty selection, and its label
    # is what a task's label would be.
    clean.update({q.id: [] for q in spec.questions
                  if q.kind == "multi_choice" and q.id not in clean})
    refuse_duplicate(session, event_id=event_id, rubric_id=version.rubric_id,
                     version=version.version, gold=True)
    now = now or utcnow()
    row = task_row(event_id=event_id, pool=pool, severity=3, rubric_id=version.rubric_id,
                   rubric_version=version.version, overlap_k=0, now=now,
                   n_responses=n_responses,
                   sla_hours=24 * 365, provenance={"rule": "gold"})
    row.update(status="gold", is_gold=True, gold_answers=clean, open_slots=0, priority=0.0)
    insert_tasks(session, [row], actor=actor, action="task.create_gold",
                 payload={"rubric": f"{version.rubric_id}@{version.version}"})
    for q in spec.questions:
        if q.id in clean:
            session.add(FinalLabelRow(
                id=new_id("lbl"), task_id=row["id"], event_id=event_id,
                rubric_id=version.rubric_id, rubric_version=version.version,
                question_id=q.id, question_kind=q.kind, value=clean[q.id],
                provenance="gold", confidence=1.0, review_ids=[], adjudication_id=None,
                source_task_id=None, policy_version=event.policy_version, decided_at=now))
    session.flush()
    return str(row["id"])
