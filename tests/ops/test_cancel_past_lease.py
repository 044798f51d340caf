"""A cancelled long job whose stopping outlasts its lease: the worker that ran it ends
the attempt quietly, and the job ends once, cancelled."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.ops.jobs import JobCancelled, JobContext, claim, enqueue, get_job, job_kind, run_next
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import AuditRow
from hilt.store.tables.ops import JobRow


@job_kind("test.slow_to_stop", transactional=False, max_attempts=1)
def slow_to_stop(ctx: JobContext, _session: Session | None) -> dict[str, Any]:
    """Cancelled at its first progress report; its child then takes longer to stop than
    the lease lasts, and another worker's claim comes meanwhile."""
    with transaction(ctx.engine) as s:
        s.get_one(JobRow, ctx.job_id).cancel_requested = True
    try:
        ctx.progress(0.5)
    except JobCancelled:
        with transaction(ctx.engine) as s:
            s.get_one(JobRow, ctx.job_id).lease_expires_at = utcnow() - timedelta(seconds=1)
        assert claim(ctx.engine, "other-worker") is None  # it ends the cancelled job
        raise
    raise AssertionError("the cancellation was not seen")


def test_the_first_worker_reports_the_job_lost_not_a_traceback(engine: Engine) -> None:
    with transaction(engine) as s:
        job_id = enqueue(s, "test.slow_to_stop", {}, actor="t")
    assert run_next(engine, "first-worker") == "lost"
    with transaction(engine) as s:
        row = get_job(s, job_id)
        assert row.status == "cancelled" and row.attempts == 1
        ends = s.execute(sa.select(AuditRow.action).where(
            AuditRow.entity_id == job_id, AuditRow.action.in_(
                ["job.cancelled", "job.failed", "job.succeeded"]))).scalars().all()
    assert ends == ["job.cancelled"]
