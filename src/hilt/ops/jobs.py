"""The background job queue: enqueue, claim under a lease, run, retry, cancel.

One table (``ops_jobs``) is the queue on both backends. A worker claims the oldest ready
row — on PostgreSQL with ``SELECT … FOR UPDATE SKIP LOCKED``, so concurrent workers
skip each other's rows instead of queueing; on SQLite every transaction already holds
the write lock (``BEGIN IMMEDIATE``) — and marks it ``running`` under a lease.

Two shapes of job:

* **transactional** (sweeps, exports of rows, anything short): the job's effect and
  its ``succeeded`` mark commit in *one* transaction that first re-locks the job row
  and checks the lease is still ours. A crash anywhere rolls the whole effect back; the
  row stays ``running`` until its lease lapses, then another worker claims it again
  (``attempts`` + 1), up to ``max_attempts``, after which it is ``failed``. So a job
  is applied once or not at all, never half.
* **long** (training, evaluation): runs outside a transaction, reporting progress in
  short transactions that also renew the lease and read the cancel flag; a requested
  cancellation stops it at its next progress report.

Every change of a job's status appends an audit entry in the transaction that makes
it: ``job.enqueue``, ``job.claim`` (a worker takes it, also after another worker's lease
lapsed), ``job.retry`` (a failed attempt sends it back to the queue), ``job.succeeded``,
``job.failed``, ``job.cancel`` (the request) and ``job.cancelled``. Progress reports,
which only renew the lease, are not audited.

Periodic work (lease sweeps, SLA breaches, webhooks) does not go through this table:
see :mod:`hilt.ops.periodic`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.config import env_float
from hilt.errors import Conflict, InputError, NotFound
from hilt.ops.logs import without_sql_parameters
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.ops import JobRow

log = logging.getLogger("hilt.ops.jobs")

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")


def lease_seconds() -> float:
    """How long a claim lasts without a heartbeat (``HILT_JOB_LEASE_SECONDS``)."""
    return env_float("HILT_JOB_LEASE_SECONDS", 60.0, above=0)


class JobCancelled(Exception):
    """Raised inside a long job when a cancellation was requested."""


class LeaseLost(Exception):
    """The job's lease passed to another worker; this attempt must not commit."""


class WorkerStopped(Exception):
    """The process running the job shut down and stopped it (e.g. terminated its child
    process). The job's error is this one line, not a traceback: nothing failed in it."""


@dataclass
class JobContext:
    """What a running job sees: its id, parameters and a progress reporter."""

    engine: Engine
    job_id: str
    worker_id: str
    attempt: int
    params: dict[str, Any]
    actor: str = "jobs"

    def progress(self, fraction: float, note: str | None = None) -> None:
        """Record progress, renew the lease, and raise :class:`JobCancelled` if asked."""
        now = utcnow()
        with transaction(self.engine) as session:
            row = _owned(session, self.job_id, self.worker_id, self.attempt)
            row.progress = max(0.0, min(1.0, float(fraction)))
            row.progress_note = (note or "")[:500] or row.progress_note
            row.lease_expires_at = now + timedelta(seconds=lease_seconds())
            cancelled = row.cancel_requested
        if cancelled:
            raise JobCancelled(f"job {self.job_id} was cancelled")


JobFn = Callable[[JobContext, Session | None], dict[str, Any] | None]


@dataclass(frozen=True)
class JobKind:
    name: str
    fn: JobFn
    transactional: bool = True
    max_attempts: int = 3
    retry_delay_s: float = 5.0
    # Whether leads and service tokens may start it over HTTP / the CLI.
    user_startable: bool = False
    description: str = ""
    # Checks a job's parameters when it is queued (raises InputError), so a bad request
    # is refused at once instead of failing later in a worker.
    check_params: Callable[[dict[str, Any]], None] | None = None
    # The events whose reviews and labels the job's output shows, from its parameters
    # (a select of event ids): who is reviewing any of them may not start it over HTTP
    # (blind review, hilt.review.blind), as they may not read the same rows directly.
    shows_items: Callable[[dict[str, Any]], sa.Select[str]] | None = None


_KINDS: dict[str, JobKind] = {}


def job_kind(name: str, *, transactional: bool = True, max_attempts: int = 3,
             retry_delay_s: float = 5.0, user_startable: bool = False,
             check_params: Callable[[dict[str, Any]], None] | None = None,
             shows_items: Callable[[dict[str, Any]], sa.Select[str]] | None = None
             ) -> Callable[[JobFn], JobFn]:
    """Register a function as a job kind. Transactional kinds get an open session."""

    def register(fn: JobFn) -> JobFn:
        _KINDS[name] = JobKind(name, fn, transactional, max_attempts, retry_delay_s,
                               user_startable, (fn.__doc__ or "").strip().split("\n")[0],
                               check_params, shows_items)
        return fn

    return register


def kinds() -> dict[str, JobKind]:
    load_job_modules()
    return dict(_KINDS)


def load_job_modules() -> None:
    """Import the built-in kinds and any named in ``HILT_JOB_MODULES`` (comma-separated
    module names; how deployments and tests add kinds of their own)."""
    import importlib

    importlib.import_module("hilt.ops.builtin")
    for name in filter(None, os.environ.get("HILT_JOB_MODULES", "").split(",")):
        importlib.import_module(name.strip())


def new_job_id() -> str:
    return "job_" + uuid.uuid4().hex[:20]


def enqueue(session: Session, kind: str, params: dict[str, Any] | None = None, *,
            actor: str, dedupe_key: str | None = None, run_after: datetime | None = None,
            max_attempts: int | None = None, priority: int = 0) -> str | None:
    """Queue a job in the caller's transaction; returns its id (``None`` when a job with
    the same ``dedupe_key`` already exists)."""
    spec = kinds().get(kind)
    if spec is None:
        raise InputError(f"unknown job kind {kind!r}; kinds: {', '.join(sorted(_KINDS))}",
                         field="kind")
    try:  # parameters are stored and audited as JSON: NaN/Infinity have no JSON form
        json.dumps(params or {}, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"job parameters must be plain JSON ({exc})", field="params") from None
    if spec.check_params is not None:
        spec.check_params(params or {})
    now = utcnow()
    job_id = new_job_id()
    values: dict[str, Any] = {
              "id": job_id, "kind": kind, "params": params or {}, "status": "queued",
              "dedupe_key": dedupe_key, "priority": priority, "attempts": 0,
              "max_attempts": max_attempts or spec.max_attempts,
              "run_after": run_after or now, "cancel_requested": False, "progress": 0.0,
              "workers": [], "created_by": actor, "created_at": now}
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(JobRow)
    stmt = insert.values(**values)
    if dedupe_key is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"])
    inserted = session.execute(stmt.returning(JobRow.id)).first()
    if inserted is None:
        return None
    audit.append(session, actor=actor, action="job.enqueue", entity_type="job",
                 entity_id=job_id, payload={"kind": kind, "params": params or {}})
    return job_id


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    kind: str
    params: dict[str, Any]
    attempt: int
    created_by: str


def claim(engine: Engine, worker_id: str, *, now: datetime | None = None) -> ClaimedJob | None:
    """Take the next ready job (queued and due, or running with a lapsed lease)."""
    known = list(kinds())
    while True:
        now = now or utcnow()
        with transaction(engine) as session:
            row = session.execute(
                sa.select(JobRow).where(
                    JobRow.kind.in_(known),
                    sa.or_(sa.and_(JobRow.status == "queued", JobRow.run_after <= now),
                           sa.and_(JobRow.status == "running",
                                   JobRow.lease_expires_at < now)))
                .order_by(JobRow.priority.desc(), JobRow.run_after, JobRow.id).limit(1)
                .with_for_update(skip_locked=True)).scalar_one_or_none()
            if row is None:
                return None
            if row.cancel_requested:
                # cancelled while its last worker held it (and then died): never re-run
                row.status, row.finished_at, row.lease_expires_at = "cancelled", now, None
                audit.append(session, actor="jobs", action="job.cancelled",
                             entity_type="job", entity_id=row.id,
                             payload={"kind": row.kind, "progress": row.progress,
                                      "at_claim": True})
                continue
            if row.status == "running" and row.attempts >= row.max_attempts:
                # Its last worker died with the lease held and no attempts are left.
                _mark_failed(session, row, f"worker {row.locked_by} stopped (lease expired)"
                             f" on attempt {row.attempts} of {row.max_attempts}", now)
                continue
            lapsed = row.status == "running"
            row.status, row.attempts = "running", row.attempts + 1
            row.locked_by = worker_id
            row.lease_expires_at = now + timedelta(seconds=lease_seconds())
            row.started_at = row.started_at or now
            row.workers = [*row.workers, worker_id]
            audit.append(session, actor="jobs", action="job.claim", entity_type="job",
                         entity_id=row.id, payload={
                             "kind": row.kind, "attempt": row.attempts, "worker": worker_id,
                             # taken over from a worker whose lease lapsed
                             "lease_lapsed": lapsed})
            return ClaimedJob(row.id, row.kind, dict(row.params), row.attempts,
                              row.created_by)


def _owned(session: Session, job_id: str, worker_id: str, attempt: int) -> JobRow:
    row = session.execute(sa.select(JobRow).where(JobRow.id == job_id)
                          .with_for_update()).scalar_one_or_none()
    if row is None or row.status != "running" or row.locked_by != worker_id \
            or row.attempts != attempt:
        raise LeaseLost(f"job {job_id}: attempt {attempt} of {worker_id} no longer holds it")
    return row


def _mark_failed(session: Session, row: JobRow, error: str, now: datetime) -> None:
    row.status, row.error, row.finished_at = "failed", error, now
    row.locked_by, row.lease_expires_at = None, None
    audit.append(session, actor="jobs", action="job.failed", entity_type="job",
                 entity_id=row.id, payload={"kind": row.kind, "attempts": row.attempts,
                                            "error": error[-2000:]})


def _succeed(session: Session, row: JobRow, result: dict[str, Any] | None) -> None:
    row.status, row.progress, row.finished_at = "succeeded", 1.0, utcnow()
    row.result = result or {}
    row.lease_expires_at = None
    audit.append(session, actor="jobs", action="job.succeeded", entity_type="job",
                 entity_id=row.id, payload={"kind": row.kind, "attempts": row.attempts,
                                            "result": row.result})


def run_claimed(engine: Engine, job: ClaimedJob, worker_id: str) -> str:
    """Run one claimed attempt; returns the job's status afterwards."""
    spec = kinds()[job.kind]
    ctx = JobContext(engine, job.id, worker_id, job.attempt, job.params, job.created_by)
    try:
        if spec.transactional:
            with transaction(engine) as session:
                # Lock our row first: while the effect runs, no other worker can take
                # the job even if the lease lapses; if we die, the lock dies with us.
                row = _owned(session, job.id, worker_id, job.attempt)
                if row.cancel_requested:  # asked between the claim and this lock
                    raise JobCancelled(job.id)
                result = spec.fn(ctx, session)
                _succeed(session, row, result)
        else:
            result = spec.fn(ctx, None)
            with transaction(engine) as session:
                _succeed(session, _owned(session, job.id, worker_id, job.attempt), result)
        return "succeeded"
    except LeaseLost as exc:
        log.warning("lease lost: %s", exc)
        return "lost"
    except JobCancelled:
        with transaction(engine) as session:
            try:
                row = _owned(session, job.id, worker_id, job.attempt)
            except LeaseLost:  # stopping took past the lease; the next claim ended it
                return "lost"
            row.status, row.finished_at, row.lease_expires_at = "cancelled", utcnow(), None
            audit.append(session, actor="jobs", action="job.cancelled", entity_type="job",
                         entity_id=job.id, payload={"kind": job.kind,
                                                    "progress": row.progress})
        return "cancelled"
    except Exception as exc:  # the job's own failure: retry later or give up
        # Bad input fails the same way on every attempt: the job fails at once, and its
        # error is the one located line (file, line, field), not a traceback. A job its
        # worker stopped when shutting down gets one line too.
        bad_input = isinstance(exc, InputError)
        # Without a database error's bound values: the error is shown over HTTP and sent
        # to webhooks (job.failed).
        error = without_sql_parameters(
            str(exc) if bad_input or isinstance(exc, WorkerStopped)
            else "".join(traceback.format_exception(exc)))[-4000:]
        log.warning("job %s (%s) attempt %d failed: %s", job.id, job.kind, job.attempt, exc)
        with transaction(engine) as session:
            try:
                row = _owned(session, job.id, worker_id, job.attempt)
            except LeaseLost:
                return "lost"
            now = utcnow()
            if bad_input or row.attempts >= row.max_attempts or row.cancel_requested:
                _mark_failed(session, row, error, now)
                return "failed"
            delay = spec.retry_delay_s * 2 ** (row.attempts - 1)
            row.status, row.error = "queued", error
            row.run_after = now + timedelta(seconds=min(delay, 3600.0))
            row.locked_by, row.lease_expires_at = None, None
            audit.append(session, actor="jobs", action="job.retry", entity_type="job",
                         entity_id=row.id, payload={
                             "kind": row.kind, "attempts": row.attempts,
                             "max_attempts": row.max_attempts,
                             "run_after": row.run_after.isoformat(), "error": error[-2000:]})
            return "queued"


def run_next(engine: Engine, worker_id: str) -> str | None:
    """Claim and run one job; ``None`` when nothing is ready."""
    job = claim(engine, worker_id)
    if job is None:
        return None
    return run_claimed(engine, job, worker_id)


# How long a cancellation waits for a job's row before it concludes that a running short
# job holds it (such a job keeps its row, and on SQLite the database, locked until done).
CANCEL_LOCK_WAIT_S = 1.0


def _not_interruptible(job_id: str, kind: str) -> Conflict:
    return Conflict(f"job {job_id} is running; this kind of job ({kind}) cannot be "
                    "interrupted: it commits or rolls back as a whole")


def _is_transactional(kind: str) -> bool:
    spec = kinds().get(kind)
    return spec is not None and spec.transactional


def _sqlite_held_by_running_job(engine: Engine, job_id: str) -> str | None:
    """SQLite: the job's kind when the database write lock stays taken for
    ``CANCEL_LOCK_WAIT_S`` while the job runs as a transactional kind; else ``None``.

    Looked at on a connection of its own, before the caller's transaction begins: that
    one starts with ``BEGIN IMMEDIATE`` and would wait for the whole job."""
    import sqlite3

    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        previous = cur.execute("PRAGMA busy_timeout").fetchone()[0]
        cur.execute(f"PRAGMA busy_timeout={int(CANCEL_LOCK_WAIT_S * 1000)}")
        try:
            try:
                cur.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                found = cur.execute(f"SELECT kind, status FROM {JobRow.__tablename__} "
                                    "WHERE id = ?", (job_id,)).fetchone()
                if found and found[1] == "running" and _is_transactional(found[0]):
                    return str(found[0])
                return None
            cur.execute("ROLLBACK")
            return None
        finally:
            cur.execute(f"PRAGMA busy_timeout={int(previous)}")
            cur.close()
    finally:
        raw.close()


def _lock_for_cancel(session: Session, job_id: str) -> JobRow | None:
    query = sa.select(JobRow).where(JobRow.id == job_id).with_for_update()
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        if isinstance(bind, Engine):  # not when handed an open connection
            kind = _sqlite_held_by_running_job(bind, job_id)
            if kind is not None:
                raise _not_interruptible(job_id, kind)
        return session.execute(query).scalar_one_or_none()
    if bind.dialect.name != "postgresql":
        return session.execute(query).scalar_one_or_none()
    seen = session.execute(sa.select(JobRow.kind).where(JobRow.id == job_id)).first()
    if seen is None:
        return None
    previous = session.execute(sa.text("SELECT current_setting('lock_timeout')")).scalar()
    session.execute(sa.text("SELECT set_config('lock_timeout', :v, true)"),
                    {"v": f"{int(CANCEL_LOCK_WAIT_S * 1000)}ms"})
    try:
        row = session.execute(query).scalar_one_or_none()
    except sa.exc.OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        if _is_transactional(seen.kind):
            raise _not_interruptible(job_id, seen.kind) from None
        raise Conflict(f"job {job_id} is busy; try again") from None
    session.execute(sa.text("SELECT set_config('lock_timeout', :v, true)"), {"v": previous})
    return row


def cancel(session: Session, job_id: str, *, actor: str) -> JobRow:
    """Cancel a queued job now; ask a running long job to stop at its next progress
    report. A running short (transactional) job cannot be interrupted: :class:`Conflict`
    at once, rather than waiting for it to finish."""
    row = _lock_for_cancel(session, job_id)
    if row is None:
        raise NotFound(f"job {job_id!r} does not exist")
    if row.status in FINISHED:
        raise Conflict(f"job {job_id} already {row.status}")
    row.cancel_requested = True
    if row.status == "queued":
        row.status, row.finished_at = "cancelled", utcnow()
    audit.append(session, actor=actor, action="job.cancel", entity_type="job",
                 entity_id=job_id, payload={"kind": row.kind, "status": row.status})
    return row


RETRYABLE = ("failed", "cancelled")


def retry(session: Session, job_id: str, *, actor: str) -> JobRow:
    """Queue a failed or cancelled job again, as the same job: it keeps its id, its
    parameters and the workers that ran it, and gets its kind's number of attempts
    anew after those it used (attempt 4 of 6 after three failed ones). Audited as
    ``job.requeue`` with the status and error it had."""
    # populate_existing: a row the session read before this lock (to check who may
    # retry it) is read again, so the status checked is the one now locked.
    row = session.execute(sa.select(JobRow).where(JobRow.id == job_id).with_for_update()
                          .execution_options(populate_existing=True)
                          ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"job {job_id!r} does not exist")
    if row.status not in RETRYABLE:
        raise Conflict(f"job {job_id} is {row.status}; only a failed or cancelled job can "
                       "be retried")
    spec = kinds().get(row.kind)
    if spec is None:
        raise Conflict(f"job {job_id} is of kind {row.kind!r}, which no loaded module "
                       "registers (HILT_JOB_MODULES); it cannot run")
    before, error = row.status, row.error
    row.status, row.run_after, row.cancel_requested = "queued", utcnow(), False
    row.max_attempts = row.attempts + spec.max_attempts
    row.error = row.result = row.progress_note = row.finished_at = None
    row.locked_by, row.lease_expires_at, row.progress = None, None, 0.0
    audit.append(session, actor=actor, action="job.requeue", entity_type="job",
                 entity_id=job_id, payload={
                     "kind": row.kind, "status_before": before, "attempts": row.attempts,
                     "max_attempts": row.max_attempts, "error": (error or "")[-2000:]})
    return row


def prune(session: Session, before: datetime, *, actor: str) -> dict[str, Any]:
    """Delete the jobs that finished (succeeded, failed or cancelled) before ``before``
    and the webhook deliveries delivered before it; queued and running jobs and pending
    or failed deliveries stay. One audit entry (``ops.prune``) records the counts."""
    from hilt.store.tables.ops import WebhookDeliveryRow

    d = WebhookDeliveryRow

    def deleted(statement: sa.Delete) -> int:
        return int(cast("sa.CursorResult[Any]", session.execute(statement)).rowcount)

    counts = {"before": before.isoformat(),
              "jobs": deleted(sa.delete(JobRow).where(JobRow.status.in_(FINISHED),
                                                      JobRow.finished_at < before)),
              "deliveries": deleted(sa.delete(d).where(d.status == "delivered",
                                                       d.delivered_at < before))}
    audit.append(session, actor=actor, action="ops.prune", entity_type="ops",
                 entity_id="prune", payload=counts)
    return counts


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Longer than anything finished can be old; beyond it the cut-off date does not exist.
_LONGEST_S = 1000 * 365 * 86400


def parse_duration(text: str, field: str = "older_than") -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` -> seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise InputError(f"{text!r} is not a duration such as 30d, 12h, 90m or 45s",
                         field=field)
    seconds = float(match[1]) * _UNIT_S[match[2]]
    if seconds > _LONGEST_S:
        raise InputError(f"{text!r} is longer than 1000 years", field=field)
    return seconds


def prune_older_than(session: Session, older_than: str, *, actor: str,
                     now: datetime | None = None) -> dict[str, Any]:
    """:func:`prune` of what finished longer ago than ``older_than`` (``30d``, see
    :func:`parse_duration`; an error names the field ``older_than``): what ``hilt jobs
    prune --older-than`` and ``POST /v1/jobs/prune`` run."""
    seconds = parse_duration(older_than)
    return prune(session, (now or utcnow()) - timedelta(seconds=seconds), actor=actor)


def get_job(session: Session, job_id: str) -> JobRow:
    row = session.get(JobRow, job_id)
    if row is None:
        raise NotFound(f"job {job_id!r} does not exist")
    return row


@dataclass
class WorkerStats:
    ran: dict[str, int] = field(default_factory=dict)

    def count(self, status: str) -> None:
        self.ran[status] = self.ran.get(status, 0) + 1
