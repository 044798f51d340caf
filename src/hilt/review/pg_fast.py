"""One-round-trip claim and submit on PostgreSQL, the two writes a review team sends all
day.

Each is one data-modifying statement run as its own (implicit) transaction on a
connection kept out of the pool for this path (:mod:`hilt.store.pg_statements`),
through psycopg directly with a server-side prepared statement: no
``BEGIN``/``COMMIT`` round trips and no ORM or SQL-compilation work per call. Both carry
their audit entry (``audit_pending``, chained by the sealer) in the same statement, so
the state change and its entry still commit together.

Neither decides anything the general path (:mod:`hilt.review.queue`,
:mod:`hilt.review.reviews`) would decide differently. Whenever a case is not the common
one they return ``None`` and the caller runs the general path, which writes nothing
twice because these statements wrote nothing:

- claim: the reviewer's pools and skills come from a per-process cache and the
  statement re-checks them, with the reviewer's status, against the reviewers row; any
  difference (a changed profile, a suspension) writes nothing and falls back. An empty
  queue also falls back (the general path sweeps expired leases and tries again). Gold
  draws always take the general path.
- submit: only a submission under the reviewer's own unexpired lease, by a reviewer who
  may still work (active, not suspended), is written here; late submissions, unknown
  tasks, repeated submissions, refused reviewers and tasks whose event was erased fall
  back (and get the general path's errors; the statement takes the event's share
  lock first, as the general path does, so that it never deadlocks with an erasure:
  :mod:`hilt.review.erasure`). The task's rubric version,
  response count and gold flag are immutable once the task exists, so they are cached
  from the claim.
- the claim skips tasks whose event was erased, as the general claim does
  (:data:`hilt.review.queue.NOT_ERASED`).
"""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from hilt.review.eligibility import GOLD_ONLY_STATUSES, PRODUCTION_STATUSES
from hilt.review.pg_resolve import read_columns
from hilt.review.queue import CLAIM_ORDER, NOT_ERASED
from hilt.store import audit
from hilt.store.pg_statements import Statements, run_statement

_STATUSES = ", ".join(f"'{s}'" for s in sorted(PRODUCTION_STATUSES))
# Who may submit: anyone who may take some work (onboarding reviewers answer gold items).
_WORKING = ", ".join(f"'{s}'" for s in sorted(PRODUCTION_STATUSES | GOLD_ONLY_STATUSES))


@dataclass(frozen=True)
class TaskFacts:
    """What a submission needs to know about its task; fixed when the task is created."""

    rubric_id: str
    rubric_version: int
    n_responses: int
    is_gold: bool


@dataclass(frozen=True)
class FastClaim:
    assignment_id: str
    task_id: str
    lease_expires_at: datetime
    resumed: bool
    facts: TaskFacts
    payload: dict[str, Any] | None


class _LRU(OrderedDict[Any, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


# Per process. A reviewer's profile is re-checked by every claim statement; task facts
# never change. Bounded, so a long-running server does not grow without limit.
_PROFILES = _LRU(10_000)
_FACTS = _LRU(100_000)


@functools.cache
def _claim_parts(n_pools: int, with_item: bool, after_submit: bool = False
                 ) -> tuple[str, str]:
    """The claim's data-modifying CTEs and its final SELECT (rows 'new' or 'held', and
    'ok' when the reviewer may take tasks). ``after_submit``: the claim follows the
    submission CTEs of :data:`_SUBMIT_CTES` in one statement (see :func:`submit_and_claim`)."""
    pools = ", ".join(f"%(pool{i})s" for i in range(n_pools))
    item = "e.payload" if with_item else "NULL::jsonb"
    events = "LEFT JOIN events e ON e.id = tk.event_id" if with_item else ""
    # After a submission: claim only if it was recorded, and only once the submitted
    # task's row is updated (reading t runs it first). Its update is the one write here
    # that can wait for a row lock; taking it before the SKIP LOCKED pick means two
    # reviewers each submitting the task the other picks cannot deadlock. The lease
    # being submitted is still active in this statement's snapshot: not a held one.
    gate = ("AND EXISTS (SELECT 1 FROM l) AND (SELECT count(*) FROM t) >= 0"
            if after_submit else "")
    not_submitted = "AND a.task_id <> %(task_id)s" if after_submit else ""
    # A claim alone need not survive a crash (see hilt.review.queue): no WAL flush wait.
    # After a submission the statement commits the review, which must be durable.
    sync_off = "NULL" if after_submit else "set_config('synchronous_commit', 'off', true)"
    ctes = f"""
    who AS (
      SELECT 1 FROM reviewers
      WHERE id = %(rid)s AND active AND status IN ({_STATUSES})
        AND pools IS NOT DISTINCT FROM CAST(%(pools_raw)s AS jsonb)
        AND skills IS NOT DISTINCT FROM CAST(%(skills_raw)s AS jsonb) {gate}),
    held AS (
      SELECT a.id, a.task_id, a.lease_expires_at FROM review_assignments a
      WHERE %(resume)s AND a.reviewer_id = %(rid)s AND a.status = 'active'
        AND a.lease_expires_at > %(now)s AND EXISTS (SELECT 1 FROM who) {not_submitted}
      LIMIT 1),
    picked AS (
      SELECT t.id FROM review_tasks t
      WHERE t.status = 'open' AND t.open_slots > 0 AND t.pool IN ({pools})
        AND t.required_skills <@ CAST(%(skills)s AS jsonb)
        AND NOT EXISTS (SELECT 1 FROM review_assignments a
                        WHERE a.task_id = t.id AND a.reviewer_id = %(rid)s)
        AND {NOT_ERASED}
        AND EXISTS (SELECT 1 FROM who) AND NOT EXISTS (SELECT 1 FROM held)
      ORDER BY {CLAIM_ORDER} LIMIT 1
      -- Only open_slots changes, never a key: NO KEY UPDATE does not block the foreign
      -- key checks of reviews and leases being inserted for this task meanwhile.
      FOR NO KEY UPDATE OF t SKIP LOCKED),
    taken AS (
      UPDATE review_tasks u SET open_slots = u.open_slots - 1 FROM picked
      WHERE u.id = picked.id
      RETURNING u.id, u.event_id, u.rubric_id, u.rubric_version, u.n_responses, u.is_gold),
    leased AS (
      INSERT INTO review_assignments
        (id, task_id, reviewer_id, status, claimed_at, lease_expires_at)
      SELECT %(aid)s, taken.id, %(rid)s, 'active', %(now)s, %(expires)s FROM taken
      RETURNING task_id),
    claim_audited AS ({audit.pending_insert_sql("leased.task_id", "leased", driver=True,
                                                prefix="claim_audit")})"""
    select = f"""
    SELECT 'new', tk.id, %(aid)s, %(expires)s, tk.rubric_id, tk.rubric_version,
           tk.n_responses, tk.is_gold, {item}, {sync_off}
      FROM taken tk {events}
    UNION ALL
    SELECT 'held', tk.id, h.id, h.lease_expires_at, tk.rubric_id, tk.rubric_version,
           tk.n_responses, tk.is_gold, {item}, NULL
      FROM held h JOIN review_tasks tk ON tk.id = h.task_id {events}
    UNION ALL
    SELECT 'ok', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM who"""
    return ctes, select


_CLAIM_COLUMNS = 10  # of the claim's SELECT


@functools.cache
def _claim_sql(n_pools: int, with_item: bool) -> str:
    ctes, select = _claim_parts(n_pools, with_item)
    return f"WITH {ctes} {select}"


# When the review is the task's k-th, the statement also reads what resolving the task
# needs (hilt.review.pg_resolve.read_columns), saving the resolution a round trip.
# The event's share lock comes first, before the lease's and the task's (l's condition
# reads ev before l updates a row), as in hilt.review.reviews.submit_review: the erasure
# locks the event first, so the two never wait on each other in a cycle. After waiting
# for an erasure, ev re-reads the event, finds it erased and the statement writes
# nothing (the general path then refuses the review).
_SUBMIT_CTES = f"""
    ev AS (
      SELECT e.id FROM review_tasks et JOIN events e ON e.id = et.event_id
      WHERE et.id = %(task_id)s AND e.erased_at IS NULL
      FOR KEY SHARE OF e),
    l AS (
      UPDATE review_assignments SET status = 'submitted', finished_at = %(submitted_at)s
      WHERE task_id = %(task_id)s AND reviewer_id = %(reviewer_id)s AND status = 'active'
        AND lease_expires_at > %(submitted_at)s
        AND EXISTS (SELECT 1 FROM reviewers rv WHERE rv.id = %(reviewer_id)s
                    AND rv.active AND rv.status IN ({_WORKING}))
        AND EXISTS (SELECT 1 FROM ev)
      RETURNING id, claimed_at),
    r AS (
      INSERT INTO reviews (id, task_id, assignment_id, reviewer_id, rubric_id,
        rubric_version, answers, confidence, rationale, rewrite, time_spent_s, is_gold,
        late, submitted_at)
      SELECT %(id)s, %(task_id)s, l.id, %(reviewer_id)s, %(rubric_id)s, %(rubric_version)s,
        CAST(%(answers)s AS jsonb), %(confidence)s, %(rationale)s, %(rewrite)s,
        -- at most the time since the claim, as hilt.review.reviews.measured_time_spent
        CASE WHEN CAST(%(time_spent_s)s AS double precision) IS NULL THEN NULL
             ELSE LEAST(CAST(%(time_spent_s)s AS double precision),
                        GREATEST(0, EXTRACT(EPOCH FROM %(submitted_at)s - l.claimed_at)))
        END,
        %(is_gold)s, false, %(submitted_at)s FROM l
      RETURNING id, reviewer_id, answers, confidence, submitted_at),
    t AS (
      UPDATE review_tasks SET reviews_done = reviews_done + 1
      WHERE id = %(task_id)s AND NOT %(is_gold)s AND EXISTS (SELECT 1 FROM r)
      RETURNING id, reviews_done, overlap_k, status, severity, policy, rubric_id,
                rubric_version, event_id, cluster_id, resolved_at),
    audited AS ({audit.pending_insert_sql("r.id", "r", driver=True)})"""
_SUBMIT_SELECT = f"""
    SELECT (SELECT id FROM l), t.reviews_done, t.overlap_k, t.status, rd.*
      FROM (SELECT 1) one LEFT JOIN t ON true
      LEFT JOIN LATERAL (  -- OFFSET 0: keeps the condition a gate before the reads
        SELECT true, {read_columns("SELECT * FROM r")}
         WHERE t.reviews_done >= t.overlap_k AND t.status = 'open' OFFSET 0) rd ON true"""
_SUBMIT_SQL = f"WITH {_SUBMIT_CTES} {_SUBMIT_SELECT}"


@functools.cache
def _submit_claim_sql(n_pools: int, with_item: bool) -> str:
    """The submission, then the claim of the reviewer's next task, in one statement: one
    row per claim row (at least one), the submission's columns first."""
    ctes, select = _claim_parts(n_pools, with_item, after_submit=True)
    return (f"WITH {_SUBMIT_CTES}, {ctes} SELECT s.*, c.* FROM ({_SUBMIT_SELECT}) s "
            f"LEFT JOIN ({select}) c ON true")


_FACTS_SQL = ("SELECT rubric_id, rubric_version, n_responses, is_gold FROM review_tasks "
              "WHERE id = %(task_id)s")
_PROFILE_SQL = "SELECT pools, skills FROM reviewers WHERE id = %(rid)s"


def _profile(stmts: Statements, reviewer_id: str) -> tuple[Any, Any] | None:
    profile = _PROFILES.get(reviewer_id)
    if profile is None:
        row = stmts.run(_PROFILE_SQL, {"rid": reviewer_id})
        if row is None:
            return None
        profile = (row[0], row[1])
        _PROFILES.put(reviewer_id, profile)
    return profile


def claim(engine: Engine, reviewer_id: str, *, now: datetime, expires: datetime,
          assignment_id: str, resume: bool, with_item: bool) -> FastClaim | None:
    """Resume the reviewer's unexpired lease (``resume``) or lease the best task; ``None``
    means "take the general path" (nothing was written)."""
    with Statements(engine) as stmts:
        found = _claim(stmts, reviewer_id, now=now, expires=expires,
                       assignment_id=assignment_id, resume=resume, with_item=with_item)
    if found is not None:
        audit.after_autocommit(engine)
    return found


def _claim(stmts: Statements, reviewer_id: str, *, now: datetime, expires: datetime,
           assignment_id: str, resume: bool, with_item: bool) -> FastClaim | None:
    prepared = _claim_params(stmts, reviewer_id, now=now, expires=expires,
                             assignment_id=assignment_id, resume=resume)
    if prepared is None:
        return None
    n_pools, params = prepared
    return _claimed(reviewer_id, stmts.run(_claim_sql(n_pools, with_item), params, many=True))


def _claim_params(stmts: Statements, reviewer_id: str, *, now: datetime, expires: datetime,
                  assignment_id: str, resume: bool) -> tuple[int, dict[str, Any]] | None:
    """(number of pools, the claim's parameters); ``None`` for an unknown reviewer."""
    profile = _profile(stmts, reviewer_id)
    if profile is None:
        return None
    pools_raw, skills_raw = profile
    pools = list(pools_raw or ["default"])
    return len(pools), {
        "rid": reviewer_id, "pools_raw": _jsonb(pools_raw), "skills_raw": _jsonb(skills_raw),
        "skills": json.dumps(skills_raw or []), "resume": resume, "now": now,
        "expires": expires, "aid": assignment_id,
        **{f"pool{i}": p for i, p in enumerate(pools)},
        **audit.pending_params(actor=reviewer_id, action="task.claim",
                               entity_type="review_task", prefix="claim_audit",
                               payload={"assignment": assignment_id,
                                        "lease_expires_at": expires.isoformat()})}


def _claimed(reviewer_id: str, rows: list[tuple[Any, ...]]) -> FastClaim | None:
    """The claim's SELECT rows as a lease; ``None``: nothing was leased."""
    kinds = {row[0]: row for row in rows}
    if "ok" not in kinds:  # the profile changed, or the reviewer may not take tasks
        _PROFILES.pop(reviewer_id, None)
        return None
    row = kinds.get("new") or kinds.get("held")
    if row is None:
        return None
    facts = TaskFacts(row[4], row[5], row[6], row[7])
    _FACTS.put(row[1], facts)
    return FastClaim(row[2], row[1], row[3].astimezone(UTC), row[0] == "held", facts, row[8])


def _jsonb(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def task_facts(engine: Engine, task_id: str) -> TaskFacts | None:
    facts = _FACTS.get(task_id)
    if facts is None:
        row = run_statement(engine, _FACTS_SQL, {"task_id": task_id})
        if row is None:
            return None
        facts = TaskFacts(row[0], row[1], row[2], row[3])
        _FACTS.put(task_id, facts)
    return facts


@dataclass(frozen=True)
class FastSubmit:
    review_id: str
    # The task's (reviews done, k, status) after this review; None for a gold task.
    counted: tuple[int, int, str] | None
    # For a k-th review: the task as hilt.review.pg_resolve reads it, from this statement.
    task_read: tuple[Any, ...] | None = None


def _submit_params(review: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    from hilt.quality.aggregation_store import RECENT_FITS

    return {**review, "answers": json.dumps(review["answers"]), "recent": RECENT_FITS,
            **audit.pending_params(**entry)}


def _submitted(review_id: str, row: tuple[Any, ...] | None) -> FastSubmit | None:
    if row is None or row[0] is None:
        return None
    if row[1] is None:
        return FastSubmit(review_id, None)
    done, k, status = int(row[1]), int(row[2]), str(row[3])
    read = None if row[4] is None else ("open", False, done, k, *row[5:])
    return FastSubmit(review_id, (done, k, status), read)


def submit(stmts: Statements, review: dict[str, Any], entry: dict[str, Any]
           ) -> FastSubmit | None:
    """Record a review under the reviewer's unexpired lease; ``None`` when there is no
    such lease (nothing was written: take the general path). The caller seals the audit
    entry (:func:`hilt.store.audit.after_autocommit`) once it let go of the connection."""
    return _submitted(review["id"], stmts.run(_SUBMIT_SQL, _submit_params(review, entry)))


def submit_and_claim(stmts: Statements, review: dict[str, Any], entry: dict[str, Any], *,
                     now: datetime, expires: datetime, assignment_id: str, resume: bool,
                     with_item: bool) -> tuple[FastSubmit | None, FastClaim | None]:
    """:func:`submit`, then (only if it was recorded) the claim of the reviewer's next
    task, in one statement and one transaction: a review team's "submit and next" costs
    one round trip. ``(None, None)``: nothing was written (take the general path for
    both); ``(recorded, None)``: the claim leased nothing (take the general path for it:
    an empty queue, a changed profile)."""
    reviewer_id = review["reviewer_id"]
    prepared = _claim_params(stmts, reviewer_id, now=now, expires=expires,
                             assignment_id=assignment_id, resume=resume)
    if prepared is None:
        return submit(stmts, review, entry), None
    n_pools, params = prepared
    rows = stmts.run(_submit_claim_sql(n_pools, with_item),
                     {**_submit_params(review, entry), **params}, many=True)
    recorded = _submitted(review["id"], rows[0][:-_CLAIM_COLUMNS] if rows else None)
    if recorded is None:
        return None, None
    claim_rows = [row[-_CLAIM_COLUMNS:] for row in rows if row[-_CLAIM_COLUMNS] is not None]
    return recorded, _claimed(reviewer_id, claim_rows)
