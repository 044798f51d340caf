"""Periodic work, run at most once per period across every process on one database.

Each API worker (and each ``hilt worker``) fires the same timers (APScheduler, see
:mod:`hilt.ops.scheduler`). A firing runs its task inside one transaction that first
takes a per-task lock — ``pg_try_advisory_xact_lock`` on PostgreSQL (a busy lock means
another process is running it right now: skip), the database write lock on SQLite — and
then reads the task's last-run time from ``ops_cursors``; if another process ran it less
than a period ago the firing does nothing. The task's effect, its audit entries and the
new last-run time commit together, so a crash leaves neither the effect nor the stamp.

A task that raises is rolled back and recorded as a ``failed`` row in ``ops_jobs`` (so
failures are visible and counted in ``/metrics``); the next period tries again.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.ops.logs import without_sql_parameters
from hilt.store.db import transaction
from hilt.store.pg_locks import SCHEMA_KEY, lock_params
from hilt.store.tables.base import utcnow
from hilt.store.tables.ops import JobRow, OpsCursorRow

log = logging.getLogger("hilt.ops.periodic")

# ``fn(session, now)``; tasks with ``own_transactions`` get ``fn(engine, now)`` instead.
TaskFn = Callable[[Any, datetime], dict[str, Any]]


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    interval_s: float
    fn: TaskFn
    # Tasks that manage their own transactions (network I/O must not hold the SQLite
    # write lock) run without the once-per-period lock; their rows carry their own locks.
    own_transactions: bool = False


# The first key of every periodic task's lock (the second names schema and task).
_PERIODIC_LOCK_SPACE = 0x6F707072


def _lock(session: Session, name: str) -> bool:
    if session.get_bind().dialect.name == "postgresql":
        sql = sa.text(f"SELECT pg_try_advisory_xact_lock(:lock_space, {SCHEMA_KEY})")
        return bool(session.execute(sql, lock_params(_PERIODIC_LOCK_SPACE, name)).scalar())
    return True  # SQLite: BEGIN IMMEDIATE already serialises every writer


def _stamp_row(session: Session, name: str) -> OpsCursorRow:
    key = f"periodic:{name}"
    row = session.get(OpsCursorRow, key, with_for_update=True)
    if row is None:
        row = OpsCursorRow(name=key, position=0, updated_at=utcnow())
        session.add(row)
        session.flush()
    return row


def run_periodic(engine: Engine, task: PeriodicTask, *, now: datetime | None = None,
                 force: bool = False, failures: list[PeriodicFailure] | None = None
                 ) -> dict[str, Any] | None:
    """Run ``task`` unless another process ran it within the period; returns its result,
    or ``None`` when skipped or failed. ``failures``: a failure is appended there
    (and not logged with its traceback) for a caller that reports it itself."""
    now = now or utcnow()
    if task.own_transactions:
        return _guarded(engine, task, lambda: task.fn(engine, now), failures)

    def once() -> dict[str, Any] | None:
        with transaction(engine) as session:
            if not _lock(session, task.name):
                return None
            stamp = _stamp_row(session, task.name)
            now_ms = int(now.timestamp() * 1000)
            # 0.9 of a period: timers in different processes drift a little.
            if not force and now_ms - stamp.position < task.interval_s * 900:
                return None
            result = task.fn(session, now)
            stamp.position, stamp.updated_at = now_ms, now
            return result

    return _guarded(engine, task, once, failures)


@dataclass(frozen=True)
class PeriodicFailure:
    """A periodic task that raised: its name, the error's last line, and the failed
    job row that records it (``None`` when the database could not take it)."""
    task: str
    error: str
    job_id: str | None


def _guarded(engine: Engine, task: PeriodicTask, call: Callable[[], dict[str, Any] | None],
             failures: list[PeriodicFailure] | None = None) -> dict[str, Any] | None:
    try:
        return call()
    except Exception as exc:
        if failures is None:
            log.exception("periodic task %s failed", task.name)
        job_id = _record_failure(engine, task.name, exc)
        if failures is not None:
            last = without_sql_parameters(
                (traceback.format_exception_only(exc) or [repr(exc)])[-1].strip())
            failures.append(PeriodicFailure(task.name, last, job_id))
        return None


def _record_failure(engine: Engine, name: str, exc: Exception) -> str | None:
    from hilt.ops.jobs import new_job_id

    now = utcnow()
    job_id = new_job_id()
    try:
        with transaction(engine) as session:
            session.add(JobRow(
                id=job_id, kind=f"periodic:{name}", params={}, status="failed",
                attempts=1, max_attempts=1, run_after=now, cancel_requested=False,
                progress=0.0, workers=[], created_by="scheduler", created_at=now,
                started_at=now, finished_at=now,
                error=without_sql_parameters("".join(traceback.format_exception(exc))
                                             )[-4000:]))
    except Exception:  # the database itself is unreachable; the log line above stays
        log.exception("could not record the failure of %s", name)
        return None
    return job_id
