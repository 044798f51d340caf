"""Jobs as operators see them: listing and filtering the queue, one job's record, and
who holds a running job's lease (what ``hilt jobs list``/``show`` and ``GET /v1/jobs``
show). Only reads; the queue itself is :mod:`hilt.ops.jobs`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.errors import InputError
from hilt.ops.jobs import STATUSES, kinds
from hilt.store.keyset import keyset
from hilt.store.tables.base import utcnow
from hilt.store.tables.ops import JobRow


def check_kind_filter(session: Session, kind: str) -> None:
    """Refuse a kind no job can have: a misspelt filter would list nothing, which reads
    as "no such jobs". A kind some stored job has passes even when no module registers
    it any more (a deployment dropped it), so that its old jobs can still be listed."""
    known = kinds()
    if kind in known or session.execute(
            sa.select(JobRow.id).where(JobRow.kind == kind).limit(1)).first() is not None:
        return
    raise InputError(f"unknown job kind {kind!r}; one of: {', '.join(sorted(known))}",
                     field="kind")


# Newest first; jobs queued at the same instant by id.
JOB_ORDER = keyset((JobRow.created_at, True), (JobRow.id, False))


def list_jobs(session: Session, *, status: str | None = None, kind: str | None = None,
              limit: int = 50, after: str | None = None) -> list[JobRow]:
    """Jobs in :data:`JOB_ORDER`; ``after``: the cursor of the previous page's last job
    (``JOB_ORDER.cursor``)."""
    if status and status not in STATUSES:
        raise InputError(f"unknown job status {status!r}; one of: {', '.join(STATUSES)}",
                         field="status")
    q = sa.select(JobRow).order_by(*JOB_ORDER.order_by()).limit(limit)
    if after:
        q = q.where(JOB_ORDER.after(after))
    if status:
        q = q.where(JobRow.status == status)
    if kind:
        q = q.where(JobRow.kind == kind)
    return list(session.execute(q).scalars())


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# A worker id as hilt's own workers make it: ``[NAME@]HOST:PID[/THREAD]`` (see
# hilt.ops.scheduler.worker_name). Ids that code running jobs itself passes may have
# any form; they are shown as they are, without a host and pid.
_WORKER_ID = re.compile(r"^(?:.*@)?(?P<host>[^@:/\s]+):(?P<pid>\d+)(?:/\d+)?$")


def worker_host_pid(worker_id: str) -> tuple[str | None, int | None]:
    """The host and process id a worker id names, or ``(None, None)``."""
    found = _WORKER_ID.match(worker_id)
    return (found["host"], int(found["pid"])) if found else (None, None)


def lease_view(row: JobRow, now: datetime | None = None) -> dict[str, Any] | None:
    """Who holds a running job and until when; ``None`` unless it is running.

    ``worker`` is the holder's id, ``host`` and ``pid`` the machine and process it names
    (``None`` for an id of another form), ``expires_at`` the end of the lease and
    ``expired`` whether that has passed: a long job's worker stopped reporting progress
    (the next claim takes the job over), or a short job is running past its lease (it
    keeps its row locked, so nothing takes it over before it ends)."""
    if row.status != "running" or row.locked_by is None:
        return None
    host, pid = worker_host_pid(row.locked_by)
    expires = row.lease_expires_at
    return {"worker": row.locked_by, "host": host, "pid": pid, "expires_at": _iso(expires),
            "expired": expires is not None and expires <= (now or utcnow())}


def job_view(row: JobRow, now: datetime | None = None) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "params": row.params, "status": row.status,
            "attempts": row.attempts, "max_attempts": row.max_attempts,
            "progress": row.progress, "progress_note": row.progress_note,
            "cancel_requested": row.cancel_requested, "lease": lease_view(row, now),
            "result": row.result, "error": row.error, "workers": row.workers,
            "created_by": row.created_by, "created_at": _iso(row.created_at),
            "started_at": _iso(row.started_at), "finished_at": _iso(row.finished_at)}
