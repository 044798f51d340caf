"""Adjudication: an adjudicator sees every review of a disagreeing task, with rationales,
and records the decision, a rationale and the cause of the disagreement.

Causes: ``guideline_gap`` (the rubric does not settle the case — gathered by
:func:`hilt.review.rubrics.guideline_proposals` for the next rubric version),
``ambiguous_input``, ``reviewer_error``, ``subjective``.

Who decides: an active reviewer identity with role ``adjudicator``, ``lead`` or
``admin``, not suspended by the quality stage (nor in a status it does not define: the
queue gives such a reviewer no work either), who wrote none of the task's reviews
(nobody settles a disagreement they are party to). Over HTTP the token's role has
already been admitted; a lead or admin token without a reviewer identity may decide too.

Who reads: the case file and the list of pending cases leave out, for a ``viewer``
reviewing the same item under another task, what blind review hides from them
(:mod:`hilt.review.blind`); nor may such a reviewer decide the case.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.errors import Conflict, Forbidden, InputError, NotFound
from hilt.review.aggregation import (
    AdjudicationPolicy,
    Aggregator,
    Answer,
    decide,
)
from hilt.review.audit_view import answers_for_audit
from hilt.review.blind import refuse_if_reviewing, reviewing_clause
from hilt.review.eligibility import eligible_work
from hilt.review.labels import finalize
from hilt.review.reviews import cached_spec, default_aggregator, labels_from, task_answers
from hilt.review.rubric_spec import answer_problems, problems_reason
from hilt.review.tasks import new_id
from hilt.review.text_checks import RATIONALE_MAX, check_length, refuse_nul
from hilt.store import audit
from hilt.store.keyset import keyset
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import EventRow, ReviewerRow
from hilt.store.tables.review import AdjudicationRow, ReviewRow, ReviewTaskRow

CAUSES = ("guideline_gap", "ambiguous_input", "reviewer_error", "subjective")
DECIDER_ROLES = ("adjudicator", "lead", "admin")


# Most urgent first, in the queue's order (hilt.review.queue.CLAIM_ORDER): among equal
# priorities the earliest SLA deadline (the most overdue), then the oldest task, then id.
PENDING_ORDER = keyset((ReviewTaskRow.priority, True), (ReviewTaskRow.sla_due_at, False),
                       (ReviewTaskRow.created_at, False), (ReviewTaskRow.id, False))


def pending(session: Session, *, limit: int = 50, viewer: str | None = None,
            after: str | None = None) -> list[dict[str, Any]]:
    """Tasks waiting for an adjudicator, most urgent first (for a ``viewer``, without
    the items they are reviewing under another task)."""
    return pending_views(pending_rows(session, limit=limit, viewer=viewer, after=after))


def pending_rows(session: Session, *, limit: int = 50, viewer: str | None = None,
                 after: str | None = None) -> list[ReviewTaskRow]:
    """The tasks :func:`pending` lists, in :data:`PENDING_ORDER`; ``after``: the cursor
    of the previous page's last task (``PENDING_ORDER.cursor``)."""
    t = ReviewTaskRow
    query = sa.select(t).where(t.status == "needs_adjudication")
    if viewer is not None:
        query = query.where(~reviewing_clause(viewer, t.event_id))
    if after:
        query = query.where(PENDING_ORDER.after(after))
    return list(session.execute(query.order_by(*PENDING_ORDER.order_by()).limit(limit))
                .scalars())


def pending_views(rows: list[ReviewTaskRow]) -> list[dict[str, Any]]:
    from hilt.review.triage import overdue_hours

    now = utcnow()
    return [{"task_id": r.id, "event_id": r.event_id, "severity": f"sev{r.severity}",
             "rubric": f"{r.rubric_id}@{r.rubric_version}", "reach": r.reach,
             "reasons": r.adjudication_reasons or {},
             "sla_due_at": r.sla_due_at.isoformat(),
             "sla_breached_at": r.sla_breached_at.isoformat() if r.sla_breached_at else None,
             "overdue_hours": overdue_hours(r.sla_due_at, r.sla_breached_at, now)}
            for r in rows]


def case_file(session: Session, task_id: str, *, viewer: str | None = None
              ) -> dict[str, Any]:
    """Everything an adjudicator needs: the item, the rubric, every review and why the
    task came to adjudication.

    Only for a task that is waiting for adjudication or resolved: on a task still under
    review the case file would show its reviews to whoever holds a lease on it (blind
    review), and on a gold item it would show the answer key. For the same reason it
    stays closed (:class:`Forbidden`) to a ``viewer`` (reviewer id) who is reviewing
    the same item under another task (:mod:`hilt.review.blind`).
    """
    task = session.get(ReviewTaskRow, task_id)
    if task is None:
        raise NotFound(f"task {task_id!r} does not exist")
    if task.is_gold or task.status not in ("needs_adjudication", "resolved"):
        raise Conflict(f"task {task_id} is {'a gold item' if task.is_gold else task.status}"
                       "; its case file opens once it waits for adjudication")
    refuse_if_reviewing(session, viewer, task.event_id, f"the case file of task {task_id}")
    event = session.get(EventRow, task.event_id)
    payload = (event.payload if event else None) or {}
    reviews, _ = task_answers(session, task_id)
    spec = cached_spec(session, task.rubric_id, task.rubric_version)
    return {
        "task_id": task.id, "status": task.status, "severity": f"sev{task.severity}",
        "reasons": task.adjudication_reasons or {},
        "rubric": {"id": task.rubric_id, "version": task.rubric_version,
                   "spec": spec.model_dump(mode="json")},
        # An erased event (payload ``{"erased": true}``) shows as in the reviewer's task
        # view (:func:`hilt.review.views.task_view`): no interaction, no responses.
        "item": {"event_id": task.event_id, "interaction": payload.get("interaction"),
                 "responses": payload.get("responses") or []},
        "reviews": [{"review_id": r.id, "reviewer_id": r.reviewer_id, "answers": r.answers,
                     "confidence": r.confidence, "rationale": r.rationale,
                     "rewrite": r.rewrite, "time_spent_s": r.time_spent_s,
                     "late": r.late, "submitted_at": r.submitted_at.isoformat()}
                    for r in reviews],
    }


def check_decider(session: Session, task_id: str, adjudicator_id: str, *,
                  token_role: str | None = None) -> None:
    """Raise unless ``adjudicator_id`` may decide the task (see module docstring).

    ``token_role``: the role of the API token the caller was admitted with; it stands for
    the identity's role, and without it the identity must be a reviewer row."""
    row = session.get(ReviewerRow, adjudicator_id)
    if row is None and token_role is None:
        raise NotFound(f"adjudicator {adjudicator_id!r} does not exist (add them with "
                       "`hilt reviewer add --role adjudicator`)")
    role = token_role or (row.role if row is not None else "")
    if role not in DECIDER_ROLES:
        raise Forbidden(f"{adjudicator_id!r} has role {role!r}; only "
                        f"{', '.join(DECIDER_ROLES)} may adjudicate")
    if row is not None and not row.active:
        raise Forbidden(f"{adjudicator_id!r} is inactive and may not adjudicate")
    if row is not None and eligible_work(row.status) == "none":
        # as the queue: the quality stage's suspension binds adjudication too
        raise Forbidden(f"{adjudicator_id!r} is {row.status} and may not adjudicate")
    reviewed = session.execute(sa.select(ReviewRow.id).where(
        ReviewRow.task_id == task_id, ReviewRow.reviewer_id == adjudicator_id).limit(1)
        ).first()
    if reviewed is not None:
        raise Conflict(f"{adjudicator_id!r} reviewed task {task_id} and may not adjudicate "
                       "it; another adjudicator must decide")


def adjudicate(session: Session, task_id: str, adjudicator_id: str, *,
               answers: dict[str, Any], rationale: str, cause: str,
               now: datetime | None = None, aggregator: Aggregator | None = None,
               token_role: str | None = None) -> str:
    """Record the decision and write the task's final labels; returns the adjudication id.

    The adjudicator must answer every question that was flagged; other questions keep
    their aggregated label unless the adjudicator answers them too. Who may decide:
    :func:`check_decider` (``token_role`` as there).
    """
    now = now or utcnow()
    if cause not in CAUSES:
        raise InputError(f"cause must be one of {', '.join(CAUSES)}", field="cause")
    if not rationale.strip():
        raise InputError("a rationale is required", field="rationale")
    check_length(rationale, "rationale", RATIONALE_MAX)
    refuse_nul(rationale, "rationale")
    refuse_nul(answers, "answers")
    task = session.execute(sa.select(ReviewTaskRow).where(ReviewTaskRow.id == task_id)
                           .with_for_update()).scalar_one_or_none()
    if task is None:
        raise NotFound(f"task {task_id!r} does not exist")
    if task.status != "needs_adjudication":
        raise Conflict(f"task {task_id} is {task.status}, not waiting for adjudication")
    check_decider(session, task_id, adjudicator_id, token_role=token_role)
    refuse_if_reviewing(session, adjudicator_id, task.event_id,
                        f"the adjudication of task {task_id}")
    erased = session.execute(sa.select(EventRow.erased_at).where(
        EventRow.id == task.event_id)).scalar_one_or_none()
    if erased is not None:
        raise Conflict(f"task {task_id}: its event was erased; no label may be written")
    spec = cached_spec(session, task.rubric_id, task.rubric_version)
    flagged = set(task.adjudication_reasons or {})
    missing = sorted(flagged - set(answers))
    if missing:
        raise InputError(f"the decision must answer the disputed question(s) {missing}",
                         field=f"answers.{missing[0]}")
    problems = [p for p in answer_problems(spec, answers, task.n_responses)
                if p[0] in answers or p[1] != "required"]
    if problems:
        field, why = problems_reason(problems, prefix="answers.")
        raise InputError(why, field=field)
    decided = {q.id: q.check_answer(answers[q.id], task.n_responses)
               for q in spec.questions if q.id in answers}
    reviews, by_question = task_answers(session, task_id)
    panel = [Answer(r.id, r.reviewer_id, None, r.confidence) for r in reviews]
    outcomes = decide(spec.questions, by_question, task.severity,
                      AdjudicationPolicy.model_validate(task.policy or {}),
                      aggregator or default_aggregator(session, task), panel=panel)
    adjudication_id = new_id("adj")
    session.add(AdjudicationRow(
        id=adjudication_id, task_id=task_id, adjudicator_id=adjudicator_id, answers=decided,
        rationale=rationale, cause=cause, reason=task.adjudication_reasons or {},
        rubric_id=task.rubric_id, rubric_version=task.rubric_version, decided_at=now))
    session.flush()
    audit.append(session, actor=adjudicator_id, action="task.adjudicate",
                 entity_type="review_task", entity_id=task_id,
                 payload={"adjudication": adjudication_id, "cause": cause,
                          "answers": answers_for_audit(
                              decided, {q.id: q.kind for q in spec.questions})})
    labels = labels_from(spec, outcomes, by_question, decided, adjudication_id)
    finalize(session, task, labels, now=now, actor=adjudicator_id)
    return adjudication_id
