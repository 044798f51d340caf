"""Assignment: pull the next task with an atomic claim and a lease; heartbeat, release,
expiry.

A claim takes one free slot of the best claimable task (``status = 'open' AND open_slots
> 0``, in the reviewer's pools, skills covered, never seen by this reviewer, its event not
erased), ordered by triage priority, then earliest SLA deadline, then age
(:data:`CLAIM_ORDER`). On PostgreSQL it is one statement: the candidate
row is locked with ``FOR UPDATE SKIP LOCKED`` (concurrent claimers skip it instead of
queueing behind it), its slot counter is decremented and the lease row inserted, all in
one round trip. On SQLite the transaction already holds the database write lock
(``BEGIN IMMEDIATE``), so select-then-update is atomic. ``(task_id, reviewer_id)`` is
unique, so a reviewer can never hold or review a task twice whatever happens.

Gold items are mixed in with probability ``gold_rate`` per claim (onboarding reviewers
get only gold); they come back through the same claim and look the same to reviewers,
which is why a gold item pinned to another rubric version than the pool's open work is
not served (:mod:`hilt.review.gold`).
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.errors import Conflict, Forbidden, NotFound
from hilt.review.eligibility import eligible_work
from hilt.review.gold import SERVED_SQL
from hilt.review.tasks import new_id
from hilt.store import audit
from hilt.store.tables.base import UTCDateTime, as_utc, utcnow
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.review import AssignmentRow, ReviewTaskRow


@dataclass(frozen=True)
class QueueConfig:
    lease_seconds: float = 900.0
    gold_rate: float = 0.05
    # Return the reviewer's unexpired lease instead of a new task (a reloaded page).
    resume_active: bool = True


@dataclass(frozen=True)
class Claim:
    assignment_id: str
    task_id: str
    lease_expires_at: datetime
    resumed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"assignment_id": self.assignment_id, "task_id": self.task_id,
                "lease_expires_at": self.lease_expires_at.isoformat(),
                "resumed": self.resumed}


# 'active' as a literal, not a parameter: the partial indexes on active leases must
# match in the generic plans of prepared statements too.
_ACTIVE: sa.ColumnElement[str] = sa.literal_column("'active'")

# The reviewer's pools, skills, status and any unexpired lease, in one round trip.
_REVIEWER = (
    sa.select(ReviewerRow.pools, ReviewerRow.skills, ReviewerRow.status, ReviewerRow.active,
              AssignmentRow.id, AssignmentRow.task_id, AssignmentRow.lease_expires_at)
    .outerjoin(AssignmentRow, sa.and_(AssignmentRow.reviewer_id == ReviewerRow.id,
                                      AssignmentRow.status == _ACTIVE,
                                      AssignmentRow.lease_expires_at > sa.bindparam("now")))
    .where(ReviewerRow.id == sa.bindparam("rid")).limit(1))


_UNSEEN = ("NOT EXISTS (SELECT 1 FROM review_assignments a "
           "WHERE a.task_id = t.id AND a.reviewer_id = :rid)")
# Erasing an event cancels its tasks; this also skips any task made for it afterwards
# (escalation reads events in an earlier transaction). A scalar subquery: one primary-key
# probe per candidate, never a join plan over the whole events table.
NOT_ERASED = "(SELECT e.erased_at FROM events e WHERE e.id = t.event_id) IS NULL"
_SKILLS = {
    "postgresql": "t.required_skills <@ CAST(:skills AS jsonb)",
    "sqlite": ("NOT EXISTS (SELECT 1 FROM json_each(t.required_skills) s "
               "WHERE s.value NOT IN (SELECT value FROM json_each(:skills)))"),
}


# The order of the queue: priority first; among equal priorities (every overdue task of
# one severity has urgency 1, and tasks created since the last triage run share theirs)
# the earliest SLA deadline, so the most overdue task, then the oldest task, then the id
# (a total order). The index ix_review_tasks_claimable holds exactly this order per pool,
# so a claim reads the head of its pool's queue instead of sorting the ready set.
CLAIM_ORDER = "t.priority DESC, t.sla_due_at, t.created_at, t.id"


def _candidates(dialect: str, status: str) -> str:
    free = "t.open_slots > 0 AND " if status == "open" else ""
    served = f" AND {SERVED_SQL}" if status == "gold" else ""
    return (f"SELECT t.id FROM review_tasks t WHERE t.status = '{status}' AND {free}"
            f"t.pool IN :pools AND {_SKILLS[dialect]} AND {_UNSEEN} AND {NOT_ERASED}"
            f"{served} ORDER BY {CLAIM_ORDER} LIMIT 1")


@functools.cache  # built once per (dialect, status): every claim runs it
def _claim_sql(dialect: str, status: str) -> sa.TextClause:
    pick = _candidates(dialect, status)
    decrement = "open_slots - 1" if status == "open" else "open_slots"
    if dialect == "postgresql":
        sql = f"""
        WITH picked AS ({pick} FOR UPDATE SKIP LOCKED),
        taken AS (UPDATE review_tasks u SET open_slots = {decrement}
                  FROM picked WHERE u.id = picked.id RETURNING u.id),
        leased AS (INSERT INTO review_assignments
                     (id, task_id, reviewer_id, status, claimed_at, lease_expires_at)
                   SELECT :aid, taken.id, :rid, 'active', :now, :expires FROM taken
                   RETURNING task_id),
        audited AS ({audit.pending_insert_sql("leased.task_id", "leased")})
        -- A claim need not survive a crash: if its commit record is lost, the slot
        -- decrement, lease and audit entry vanish together and the task is simply free
        -- again; so this transaction skips the WAL flush wait. Later synchronous
        -- commits (a submission) flush this one's WAL first.
        SELECT task_id, set_config('synchronous_commit', 'off', true) FROM leased"""
    else:
        sql = (f"UPDATE review_tasks SET open_slots = {decrement} "
               f"WHERE id = ({pick}) RETURNING id")
    binds: list[sa.BindParameter[Any]] = [sa.bindparam("pools", expanding=True)]
    if dialect == "postgresql":
        binds += [sa.bindparam("now", type_=UTCDateTime()),
                  sa.bindparam("expires", type_=UTCDateTime()), *audit.PENDING_BINDS]
    return sa.text(sql).bindparams(*binds)


_INSERT_LEASE = sa.text(
    "INSERT INTO review_assignments (id, task_id, reviewer_id, status, claimed_at, "
    "lease_expires_at) VALUES (:aid, :tid, :rid, 'active', :now, :expires)").bindparams(
        sa.bindparam("now", type_=UTCDateTime()), sa.bindparam("expires", type_=UTCDateTime()))


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _try_claim(session: Session, status: str, params: dict[str, Any]) -> str | None:
    dialect = _dialect(session)
    row = session.connection().execute(_claim_sql(dialect, status), params).first()
    if row is None:
        return None
    if dialect == "postgresql":
        audit.mark_pending(session)  # the claim statement wrote the entry
    else:
        session.connection().execute(_INSERT_LEASE, {**params, "tid": row[0]})
        audit.append(session, actor=params["rid"], action="task.claim",
                     entity_type="review_task", entity_id=row[0],
                     payload=_claim_payload(params))
    return str(row[0])


def _claim_payload(params: dict[str, Any]) -> dict[str, Any]:
    return {"assignment": params["aid"], "lease_expires_at": params["expires"].isoformat()}


def claim_next(session: Session, reviewer_id: str, *, now: datetime | None = None,
               config: QueueConfig = QueueConfig(), rng: random.Random | None = None,
               draw: float | None = None) -> Claim | None:
    """Lease the reviewer's next task, or ``None`` when nothing is available (``draw``,
    in [0, 1), decides a gold item against ``config.gold_rate``; by default from
    ``rng``)."""
    now = as_utc(now or utcnow())
    # Core statements on the session's connection: no ORM work on the hot path.
    who = session.connection().execute(_REVIEWER, {"rid": reviewer_id, "now": now}).first()
    if who is None:
        raise NotFound(f"reviewer {reviewer_id!r} does not exist")
    eligible = eligible_work(who.status, active=bool(who.active))
    if eligible == "none":
        state = who.status if who.active else "inactive"
        raise Forbidden(f"reviewer {reviewer_id!r} is {state} and receives no tasks")
    if config.resume_active and who.id is not None:
        return Claim(who.id, who.task_id, who.lease_expires_at, resumed=True)
    pools, skills = who.pools, who.skills
    expires = now + timedelta(seconds=config.lease_seconds)
    params = {"rid": reviewer_id, "pools": pools or ["default"], "now": now,
              "expires": expires, "aid": new_id("asg"), "skills": json.dumps(skills)}
    if _dialect(session) == "postgresql":
        params.update(audit.pending_params(actor=reviewer_id, action="task.claim",
                                           entity_type="review_task",
                                           payload=_claim_payload(params)))
    if draw is None:
        draw = (rng or random).random()
    order = ["gold"] if eligible == "gold_only" else (
        ["gold", "open"] if draw < config.gold_rate else ["open"])
    task_id = None
    for status in order:
        task_id = _try_claim(session, status, params)
        if task_id is not None:
            break
    if task_id is None and eligible == "all" and expire_leases(session, now, actor="queue"):
        task_id = _try_claim(session, "open", params)
    if task_id is None:
        return None
    return Claim(str(params["aid"]), task_id, expires)


def _active_assignment(session: Session, task_id: str, reviewer_id: str) -> AssignmentRow:
    row = session.execute(sa.select(AssignmentRow).where(
        AssignmentRow.task_id == task_id, AssignmentRow.reviewer_id == reviewer_id)
        .with_for_update()).scalar_one_or_none()
    if row is None:
        raise NotFound(f"reviewer {reviewer_id!r} holds no lease on task {task_id!r}")
    return row


def check_may_work(session: Session, reviewer_id: str) -> None:
    """Refuse a reviewer who may take no work (suspended, deactivated): their leases
    ended when that happened, and neither a heartbeat nor a review may bring one back."""
    who = session.execute(sa.select(ReviewerRow.status, ReviewerRow.active)
                          .where(ReviewerRow.id == reviewer_id)).first()
    if who is None:
        raise NotFound(f"reviewer {reviewer_id!r} does not exist")
    if eligible_work(who.status, active=bool(who.active)) == "none":
        state = who.status if who.active else "inactive"
        raise Forbidden(f"reviewer {reviewer_id!r} is {state} and may not work on tasks; "
                        "nothing was recorded")


def heartbeat(session: Session, task_id: str, reviewer_id: str, *,
              now: datetime | None = None, config: QueueConfig = QueueConfig()) -> datetime:
    """Extend an unexpired lease; returns the new expiry."""
    now = as_utc(now or utcnow())
    check_may_work(session, reviewer_id)
    row = _active_assignment(session, task_id, reviewer_id)
    if row.status == "cancelled":
        raise Conflict(f"task {task_id} was cancelled: its event was erased; claim a new "
                       "task")
    if row.status != "active" or row.lease_expires_at <= now:
        raise Conflict(f"the lease on task {task_id} expired at "
                       f"{row.lease_expires_at.isoformat()}; claim a new task")
    row.lease_expires_at = now + timedelta(seconds=config.lease_seconds)
    audit.append(session, actor=reviewer_id, action="task.heartbeat",
                 entity_type="review_task", entity_id=task_id,
                 payload={"assignment": row.id,
                          "lease_expires_at": row.lease_expires_at.isoformat()})
    return row.lease_expires_at


def _free_slots(session: Session, task_counts: dict[str, int]) -> None:
    t = ReviewTaskRow
    for task_id, n in task_counts.items():
        session.execute(sa.update(t).where(t.id == task_id, t.is_gold.is_(False))
                        .values(open_slots=t.open_slots + n))


def release(session: Session, task_id: str, reviewer_id: str, *,
            now: datetime | None = None) -> None:
    """Give a leased task back unanswered (the reviewer will not be offered it again)."""
    now = as_utc(now or utcnow())
    row = _active_assignment(session, task_id, reviewer_id)
    if row.status != "active":
        raise Conflict(f"task {task_id} is not leased to {reviewer_id} (lease {row.status})")
    row.status, row.finished_at = "released", now
    _free_slots(session, {task_id: 1})
    audit.append(session, actor=reviewer_id, action="task.release", entity_type="review_task",
                 entity_id=task_id, payload={"assignment": row.id})


def expire_leases(session: Session, now: datetime | None = None, *, actor: str = "queue"
                  ) -> int:
    """Return the slots of every lease past its expiry; returns how many expired."""
    now = as_utc(now or utcnow())
    a = AssignmentRow
    expired = session.execute(
        sa.update(a).where(a.status == _ACTIVE, a.lease_expires_at <= now)
        .values(status="expired", finished_at=now)
        .returning(a.id, a.task_id, a.reviewer_id)
        .execution_options(synchronize_session=False)).all()
    _return_slots(session, expired, actor=actor, action="task.lease_expired")
    return len(expired)


def _return_slots(session: Session, ended: Sequence[Any], *, actor: str, action: str,
                  **payload: Any) -> None:
    """Give the slots of ended leases (rows with ``id``, ``task_id``, ``reviewer_id``)
    back to their tasks, with one ``action`` audit entry per lease."""
    if not ended:
        return
    counts: dict[str, int] = {}
    for row in ended:
        counts[row.task_id] = counts.get(row.task_id, 0) + 1
    _free_slots(session, counts)
    for row in ended:
        audit.append(session, actor=actor, action=action, entity_type="review_task",
                     entity_id=row.task_id,
                     payload={"assignment": row.id, "reviewer": row.reviewer_id, **payload})


def end_reviewer_leases(session: Session, reviewer_id: str, *, actor: str, reason: str,
                        now: datetime | None = None) -> int:
    """End every active lease of a reviewer who may no longer work (suspended,
    deactivated) and return the slots to the queue; returns how many ended. Each ends as
    ``released`` with a ``task.lease_revoked`` audit entry."""
    now = as_utc(now or utcnow())
    a = AssignmentRow
    ended = session.execute(
        sa.update(a).where(a.reviewer_id == reviewer_id, a.status == _ACTIVE)
        .values(status="released", finished_at=now)
        .returning(a.id, a.task_id, a.reviewer_id)
        .execution_options(synchronize_session=False)).all()
    _return_slots(session, ended, actor=actor, action="task.lease_revoked", reason=reason)
    return len(ended)
