"""``hilt jobs retry`` queues a failed or cancelled job again; ``hilt jobs prune`` deletes
finished jobs and delivered webhook deliveries older than a duration, and nothing else."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.ops import jobs
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import AuditRow
from hilt.store.tables.ops import JobRow, WebhookDeliveryRow

from . import job_kinds  # noqa: F401  (registers the test kinds)
from .climain import run_main
from .helpers import prunable_deliveries


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _output_json(out: str) -> dict[str, object]:
    return json.loads(out[out.index("{"):out.rindex("}") + 1])


def test_a_failed_job_is_retried_as_the_same_job(engine: Engine) -> None:
    with transaction(engine) as s:
        job_id = jobs.enqueue(s, "test.crash_midway", {"reviewer_id": "r"}, actor="test")
    assert job_id is not None
    assert run_main("jobs", "work", "--db", _url(engine))[0] == 1  # two attempts, failed
    code, out = run_main("jobs", "retry", job_id, "--db", _url(engine))
    assert code == 0, out
    view = _output_json(out)
    assert (view["id"], view["status"], view["attempts"], view["max_attempts"]) == \
        (job_id, "queued", 2, 4)
    assert view["error"] is None
    with transaction(engine) as s:
        entry = s.execute(sa.select(AuditRow).where(AuditRow.action == "job.requeue")
                          ).scalar_one()
        assert entry.entity_id == job_id and entry.payload["status_before"] == "failed"
        assert "crashed halfway" in entry.payload["error"]
    code, out = run_main("jobs", "work", "--db", _url(engine))
    assert code == 1 and "attempt 3 of 4 failed, queued again" in out, out


@pytest.mark.parametrize("status", ["queued", "succeeded"])
def test_only_failed_or_cancelled_jobs_are_retried(engine: Engine, status: str) -> None:
    with transaction(engine) as s:
        job_id = jobs.enqueue(s, "test.long", {"steps": 1}, actor="test")
        assert job_id is not None
        s.get_one(JobRow, job_id).status = status
    code, out = run_main("jobs", "retry", job_id, "--db", _url(engine))
    assert code == 2
    assert out.splitlines() == [f"error: job {job_id} is {status}; only a failed or "
                                "cancelled job can be retried"]


def test_a_cancelled_job_is_retried(engine: Engine) -> None:
    with transaction(engine) as s:
        job_id = jobs.enqueue(s, "test.long", {"steps": 1, "step_s": 0}, actor="test")
        assert job_id is not None
        jobs.cancel(s, job_id, actor="test")
    assert run_main("jobs", "retry", job_id, "--db", _url(engine))[0] == 0
    code, out = run_main("jobs", "work", "--db", _url(engine))
    assert code == 0 and "succeeded" in out, out


def _age(engine: Engine, job_id: str, days: float) -> None:
    with transaction(engine) as s:
        s.get_one(JobRow, job_id).finished_at = utcnow() - timedelta(days=days)


def test_prune_deletes_only_what_finished_long_enough_ago(engine: Engine) -> None:
    now = utcnow()
    with transaction(engine) as s:
        old_done, new_done, queued = (
            jobs.enqueue(s, "test.long", {"steps": 1}, actor="t") for _ in range(3))
        for job_id in (old_done, new_done):
            s.get_one(JobRow, job_id).status = "succeeded"
        prunable_deliveries(s, now)
    assert old_done and new_done and queued
    _age(engine, old_done, 40)
    _age(engine, new_done, 1)
    code, out = run_main("jobs", "prune", "--older-than", "30d", "--db", _url(engine))
    assert code == 0, out
    counts = _output_json(out)
    assert (counts["jobs"], counts["deliveries"]) == (1, 1)
    with transaction(engine) as s:
        assert set(s.execute(sa.select(JobRow.id)).scalars()) == {new_done, queued}
        assert set(s.execute(sa.select(WebhookDeliveryRow.id)).scalars()) == \
            {"whd_2", "whd_3", "whd_4"}
        entry = s.execute(sa.select(AuditRow).where(AuditRow.action == "ops.prune")
                          ).scalar_one()
        assert entry.payload["jobs"] == 1 and entry.payload["deliveries"] == 1


def test_prune_needs_a_duration(engine: Engine) -> None:
    code, out = run_main("jobs", "prune", "--older-than", "soon", "--db", _url(engine))
    assert code == 2
    assert out.splitlines() == ["error: field '--older-than': 'soon' is not a duration "
                                "such as 30d, 12h, 90m or 45s"]


def test_prune_refuses_a_duration_past_any_date(engine: Engine) -> None:
    # The cut-off would be before year 1: one line naming the option, not a traceback.
    code, out = run_main("jobs", "prune", "--older-than", "99999999w", "--db",
                         _url(engine))
    assert code == 2
    assert out.splitlines() == ["error: field '--older-than': '99999999w' is longer "
                                "than 1000 years"]


def test_a_retry_checks_the_status_it_locked_not_one_read_before(engine: Engine) -> None:
    """The HTTP route reads the job before retrying it (who may retry it): a retry that
    commits in between must make the second one a conflict, not a second requeue."""
    from hilt.errors import Conflict

    if engine.dialect.name == "sqlite":
        pytest.skip("on SQLite the first transaction holds the write lock throughout")
    with transaction(engine) as s:
        job_id = jobs.enqueue(s, "test.long", {"steps": 1}, actor="test")
        assert job_id is not None
        s.get_one(JobRow, job_id).status = "failed"
    with pytest.raises(Conflict, match="is queued"), transaction(engine) as first:
        seen = jobs.get_job(first, job_id)  # held, as the route holds it
        assert seen.status == "failed"
        with transaction(engine) as second:
            jobs.retry(second, job_id, actor="other")
        assert jobs.retry(first, job_id, actor="test") is seen
    with transaction(engine) as s:
        assert len(s.execute(sa.select(AuditRow).where(AuditRow.action == "job.requeue")
                             ).all()) == 1
