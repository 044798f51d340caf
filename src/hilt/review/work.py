"""A reviewer's two everyday requests as units of work with their own transactions:
take the next task, submit a review. HTTP, the CLI and the benchmarks go through here.

On PostgreSQL the common case of each is one statement (:mod:`hilt.review.pg_fast`);
everything else — SQLite, gold draws, late submissions, errors, an empty queue — runs
the general path (:func:`hilt.review.queue.claim_next`,
:func:`hilt.review.reviews.submit_review`) in one transaction.

A review recorded by the one-statement path commits before its task is resolved (the
resolution is a second, ordinary transaction that locks the task). If the process dies
in between, the task waits — open, with its k reviews and no free slot — for the
``review.resolve_complete`` sweep (:func:`resolve_complete_tasks`), which runs every
few seconds in every ``hilt serve`` and ``hilt worker``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.errors import InputError
from hilt.review import pg_fast, pg_resolve, views
from hilt.review.aggregation import Aggregator
from hilt.review.queue import Claim, QueueConfig, claim_next
from hilt.review.reviews import (
    Submission,
    SubmitResult,
    clean_submission,
    engine_spec,
    engine_spec_json,
    resolve_if_complete,
    review_record,
    submit_review,
)
from hilt.review.tasks import new_id
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.pg_statements import Statements
from hilt.store.tables.base import as_utc, utcnow
from hilt.store.tables.review import ReviewTaskRow


@dataclass(frozen=True)
class NextTask:
    claim: Claim
    # The task as its reviewer sees it (views.reviewer_task_view), when asked for.
    view: dict[str, Any] | None = None


def _postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def next_task(engine: Engine, reviewer_id: str, *, config: QueueConfig = QueueConfig(),
              now: datetime | None = None, rng: random.Random | None = None,
              with_view: bool = False) -> NextTask | None:
    """Lease the reviewer's next task (or resume their unexpired lease, per ``config``);
    ``None`` when nothing is available."""
    return _next_task(engine, reviewer_id, config, as_utc(now or utcnow()),
                      (rng or random).random(),
                      with_view)


def _next_task(engine: Engine, reviewer_id: str, config: QueueConfig, now: datetime,
               draw: float, with_view: bool, *, fast: bool = True) -> NextTask | None:
    """``draw`` in [0, 1) decides a gold item against ``config.gold_rate``."""
    if fast and _postgres(engine) and draw >= config.gold_rate:
        claimed = pg_fast.claim(engine, reviewer_id, now=now,
                                expires=now + timedelta(seconds=config.lease_seconds),
                                assignment_id=new_id("asg"), resume=config.resume_active,
                                with_item=with_view)
        if claimed is not None:
            return _from_fast(engine, claimed, with_view)
    with transaction(engine) as session:
        general = claim_next(session, reviewer_id, now=now, config=config, draw=draw)
        if general is None:
            return None
        view = (views.reviewer_task_view(session, general.task_id, reviewer_id)
                if with_view else None)
        return NextTask(general, view)


def _from_fast(engine: Engine, fast: pg_fast.FastClaim, with_view: bool) -> NextTask:
    claim = Claim(fast.assignment_id, fast.task_id, fast.lease_expires_at,
                  resumed=fast.resumed)
    view = None
    if with_view:
        view = views.task_view(
            fast.task_id, fast.assignment_id, "active", fast.lease_expires_at,
            fast.facts.rubric_id, fast.facts.rubric_version,
            engine_spec_json(engine, fast.facts.rubric_id, fast.facts.rubric_version),
            fast.payload)
    return NextTask(claim, view)


def submit(engine: Engine, task_id: str, reviewer_id: str, submission: Submission, *,
           now: datetime | None = None, aggregator: Aggregator | None = None
           ) -> SubmitResult:
    """Record the reviewer's review of a task they hold; resolves the task when its k-th
    review arrives."""
    # a lease is now plus seconds: in UTC, so a daylight-saving change cannot stretch it
    now = as_utc(now or utcnow())
    if _postgres(engine):
        done = _submit_fast(engine, task_id, reviewer_id, submission, now, aggregator)
        if done is not None:
            return done[0]
    return _submit_general(engine, task_id, reviewer_id, submission, now, aggregator)


def _submit_general(engine: Engine, task_id: str, reviewer_id: str, submission: Submission,
                    now: datetime, aggregator: Aggregator | None) -> SubmitResult:
    with transaction(engine) as session:
        return submit_review(session, task_id, reviewer_id, submission, now=now,
                             aggregator=aggregator)


def submit_and_next(engine: Engine, task_id: str, reviewer_id: str, submission: Submission,
                    *, config: QueueConfig = QueueConfig(), now: datetime | None = None,
                    rng: random.Random | None = None, with_view: bool = False,
                    aggregator: Aggregator | None = None
                    ) -> tuple[SubmitResult, NextTask | None]:
    """:func:`submit`, then :func:`next_task` for the same reviewer: what a reviewer does
    all day, as one request. Each keeps its own meaning (the review is recorded, or
    refused, exactly as by :func:`submit`; nothing is leased if it is refused). On
    PostgreSQL the common case of both is one statement in one transaction
    (:func:`hilt.review.pg_fast.submit_and_claim`)."""
    # a lease is now plus seconds: in UTC, so a daylight-saving change cannot stretch it
    now = as_utc(now or utcnow())
    draw = (rng or random).random()
    if _postgres(engine) and draw >= config.gold_rate:
        claim = {"now": now, "expires": now + timedelta(seconds=config.lease_seconds),
                 "assignment_id": new_id("asg"), "resume": config.resume_active,
                 "with_item": with_view}
        done = _submit_fast(engine, task_id, reviewer_id, submission, now, aggregator,
                            claim=claim)
        if done is not None:
            result, claimed = done
            if claimed is not None:
                return result, _from_fast(engine, claimed, with_view)
            # Nothing leased (an empty queue, a changed profile): the general path.
            return result, _next_task(engine, reviewer_id, config, now, draw, with_view,
                                      fast=False)
        # The one statement wrote nothing (a late submission, say): no second try of it.
        result = _submit_general(engine, task_id, reviewer_id, submission, now, aggregator)
    else:
        result = submit(engine, task_id, reviewer_id, submission, now=now,
                        aggregator=aggregator)
    return result, _next_task(engine, reviewer_id, config, now, draw, with_view)


def _submit_fast(engine: Engine, task_id: str, reviewer_id: str, submission: Submission,
                 now: datetime, aggregator: Aggregator | None,
                 claim: dict[str, Any] | None = None
                 ) -> tuple[SubmitResult, pg_fast.FastClaim | None] | None:
    """The one-statement submission (with ``claim``, the arguments of the claim that
    follows it in the same statement): its result and the new lease, if any; ``None``
    when nothing was written (the general path)."""
    record = _fast_record(engine, task_id, reviewer_id, submission, now)
    if record is None:
        return None
    claimed = None
    with Statements(engine) as stmts:
        if claim is None:
            recorded = pg_fast.submit(stmts, *record)
        else:
            recorded, claimed = pg_fast.submit_and_claim(stmts, *record, **claim)
        if recorded is None:
            return None
        status = _resolve_fast(stmts, recorded, task_id, reviewer_id, now, aggregator)
    return _submitted(engine, recorded, task_id, reviewer_id, status, now,
                      aggregator), claimed


def _fast_record(engine: Engine, task_id: str, reviewer_id: str, submission: Submission,
                 now: datetime) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The review row and its audit entry for the one-statement path; ``None`` for a
    task this process cannot describe, or a submission its rubric version refuses (the
    general path)."""
    facts = pg_fast.task_facts(engine, task_id)
    if facts is None:
        return None
    spec = engine_spec(engine, facts.rubric_id, facts.rubric_version)
    try:
        clean = clean_submission(spec, submission, facts.n_responses)
    except InputError:
        # Refused by the general path, as on SQLite: whether the reviewer may work and
        # holds the task (403, 404, 409) comes before what the answers say, so that
        # someone who never held the task does not have their answers checked.
        return None
    return review_record(task_id, reviewer_id, submission, clean, now=now,
                         assignment_id=None, rubric_id=facts.rubric_id,
                         rubric_version=facts.rubric_version, is_gold=facts.is_gold,
                         late=False)


def _resolve_fast(stmts: Statements, recorded: pg_fast.FastSubmit, task_id: str,
                  reviewer_id: str, now: datetime, aggregator: Aggregator | None
                  ) -> str | None:
    """The task's status after a recorded review, resolving it on the same connection
    when this was its k-th; ``None``: resolve it in a transaction."""
    if recorded.counted is None:
        return "gold"  # gold tasks stay claimable; their reviews are not counted
    done, k, status = recorded.counted
    if done >= k and status == "open":
        return pg_resolve.resolve(stmts, task_id, now=now, actor=reviewer_id,
                                  aggregator=aggregator, known=recorded.task_read)
    return status


def _submitted(engine: Engine, recorded: pg_fast.FastSubmit, task_id: str,
               reviewer_id: str, status: str | None, now: datetime,
               aggregator: Aggregator | None) -> SubmitResult:
    if status is None:  # not the common case: resolve in a transaction
        with transaction(engine) as session:
            status = resolve_if_complete(session, task_id, now=now,
                                         aggregator=aggregator, actor=reviewer_id)
    audit.after_autocommit(engine)
    return SubmitResult(recorded.review_id, task_id, False, status)


def resolve_complete_tasks(session: Session, now: datetime | None = None, *,
                           limit: int = 500) -> int:
    """Resolve open tasks that have all their reviews (left so by a process that died
    between recording a k-th review and resolving its task); returns how many."""
    # a lease is now plus seconds: in UTC, so a daylight-saving change cannot stretch it
    now = as_utc(now or utcnow())
    t = ReviewTaskRow
    ids = session.execute(
        sa.select(t.id).where(t.status == "open", t.is_gold.is_(False),
                              t.reviews_done >= t.overlap_k)
        .order_by(t.id).limit(limit)).scalars().all()
    for task_id in ids:
        resolve_if_complete(session, task_id, now=now, actor="queue")
    return len(ids)
