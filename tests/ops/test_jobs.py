"""The job queue: exclusive claims, all-or-nothing effects, retries, leases, cancel,
once-per-period tasks. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.errors import Conflict, InputError
from hilt.ops import jobs
from hilt.ops.periodic import PeriodicTask, run_periodic
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.ops import JobRow, OpsCursorRow

from . import job_kinds  # noqa: F401  (registers the test kinds)


def _enqueue(engine: Engine, kind: str, params: dict, **kw: object) -> str:
    with transaction(engine) as s:
        job_id = jobs.enqueue(s, kind, params, actor="test", **kw)  # type: ignore[arg-type]
    assert job_id is not None
    return job_id


def _job(engine: Engine, job_id: str) -> JobRow:
    with transaction(engine) as s:
        return jobs.get_job(s, job_id)


def _reviewers(engine: Engine) -> set[str]:
    with transaction(engine) as s:
        return set(s.execute(sa.select(ReviewerRow.id)).scalars())


def test_job_runs_once_and_records_result(engine: Engine) -> None:
    job_id = _enqueue(engine, "test.slow_write", {"reviewer_id": "r-job"})
    assert jobs.run_next(engine, "w1") == "succeeded"
    assert jobs.run_next(engine, "w2") is None  # nothing left for another worker
    row = _job(engine, job_id)
    assert (row.status, row.attempts, row.workers, row.progress) == ("succeeded", 1, ["w1"],
                                                                     1.0)
    assert row.result is not None and row.result["worker"] == "w1"
    assert _reviewers(engine) == {"r-job"}
    with transaction(engine) as s:
        assert audit.verify(s).ok
        actions = [e.action for e in audit.entries(s, entity_id=job_id)]
    assert actions == ["job.succeeded", "job.claim", "job.enqueue"]


def test_crash_midway_is_never_half_applied(engine: Engine) -> None:
    job_id = _enqueue(engine, "test.crash_midway", {"reviewer_id": "half"})
    assert jobs.run_next(engine, "w1") == "queued"  # retried
    row = _job(engine, job_id)
    assert row.status == "queued" and row.attempts == 1 and "crashed halfway" in row.error
    assert jobs.run_next(engine, "w1") == "failed"  # out of attempts
    row = _job(engine, job_id)
    assert row.status == "failed" and row.attempts == 2
    assert _reviewers(engine) == set()  # neither attempt left its first half behind
    with transaction(engine) as s:
        assert audit.verify(s).ok
        assert not audit.entries(s, action="reviewer.create")


def test_lapsed_lease_goes_to_another_worker_and_the_first_cannot_commit(
        engine: Engine) -> None:
    job_id = _enqueue(engine, "test.slow_write", {"reviewer_id": "r-lease"})
    first = jobs.claim(engine, "w1")
    assert first is not None and first.attempt == 1
    assert jobs.claim(engine, "w2") is None  # leased
    later = utcnow() + timedelta(seconds=jobs.lease_seconds() + 1)
    second = jobs.claim(engine, "w2", now=later)  # w1 looks dead: its lease lapsed
    assert second is not None and second.attempt == 2
    assert jobs.run_claimed(engine, first, "w1") == "lost"  # w1 wakes up: rolled back
    assert jobs.run_claimed(engine, second, "w2") == "succeeded"
    row = _job(engine, job_id)
    assert row.workers == ["w1", "w2"] and row.status == "succeeded"
    assert _reviewers(engine) == {"r-lease"}


def test_worker_dead_on_last_attempt_is_marked_failed(engine: Engine) -> None:
    job_id = _enqueue(engine, "test.slow_write", {"reviewer_id": "x"}, max_attempts=1)
    assert jobs.claim(engine, "w1") is not None
    later = utcnow() + timedelta(seconds=jobs.lease_seconds() + 1)
    assert jobs.claim(engine, "w2", now=later) is None
    row = _job(engine, job_id)
    assert row.status == "failed" and "lease expired" in (row.error or "")


def test_dedupe_key_makes_one_job(engine: Engine) -> None:
    first = _enqueue(engine, "test.slow_write", {"reviewer_id": "a"}, dedupe_key="k1")
    with transaction(engine) as s:
        assert jobs.enqueue(s, "test.slow_write", {"reviewer_id": "a"}, actor="t",
                            dedupe_key="k1") is None
        assert s.execute(sa.select(sa.func.count()).select_from(JobRow)).scalar() == 1
    assert first.startswith("job_")


def test_cancel_queued_and_running(engine: Engine) -> None:
    queued = _enqueue(engine, "test.slow_write", {"reviewer_id": "never"},
                      run_after=utcnow() + timedelta(hours=1))
    with transaction(engine) as s:
        assert jobs.cancel(s, queued, actor="lead").status == "cancelled"
    with pytest.raises(Conflict), transaction(engine) as s:
        jobs.cancel(s, queued, actor="lead")

    running = _enqueue(engine, "test.long", {"steps": 200, "step_s": 0.02})
    outcome: list[str | None] = []
    thread = threading.Thread(target=lambda: outcome.append(jobs.run_next(engine, "w1")))
    thread.start()
    deadline = time.monotonic() + 10
    while _job(engine, running).progress == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    seen = _job(engine, running)
    assert seen.status == "running" and 0 < seen.progress < 1  # progress is visible
    with transaction(engine) as s:
        jobs.cancel(s, running, actor="lead")
    thread.join(10)
    assert outcome == ["cancelled"]
    row = _job(engine, running)
    assert row.status == "cancelled" and row.progress < 1


def test_periodic_task_runs_once_per_period_and_failures_are_recorded(
        engine: Engine) -> None:
    calls: list[int] = []

    def count(session, now):  # type: ignore[no-untyped-def]
        calls.append(1)
        return {"n": len(calls)}

    task = PeriodicTask("test.count", 60, count)
    now = utcnow()
    assert run_periodic(engine, task, now=now) == {"n": 1}
    assert run_periodic(engine, task, now=now + timedelta(seconds=5)) is None
    assert run_periodic(engine, task, now=now + timedelta(seconds=61)) == {"n": 2}

    def broken(session, now):  # type: ignore[no-untyped-def]
        session.add(OpsCursorRow(name="half-written", position=1, updated_at=now))
        session.flush()
        raise ValueError("boom")

    assert run_periodic(engine, PeriodicTask("test.broken", 60, broken)) is None
    with transaction(engine) as s:
        assert s.get(OpsCursorRow, "half-written") is None
        assert s.get(OpsCursorRow, "periodic:test.broken") is None  # no stamp either
        failed = s.execute(sa.select(JobRow).where(JobRow.kind == "periodic:test.broken")
                           ).scalar_one()
        assert failed.status == "failed" and "boom" in (failed.error or "")


def test_expire_leases_sweep(engine: Engine) -> None:
    from hilt.ops.builtin import periodic_tasks
    from hilt.review.queue import QueueConfig, claim_next

    from .helpers import reviewers, workload

    reviewers(engine, ["ann"])
    workload(engine, 1, overlap=1)
    with transaction(engine) as s:
        claim = claim_next(s, "ann", config=QueueConfig(lease_seconds=0.01, gold_rate=0))
    assert claim is not None
    time.sleep(0.05)
    sweep = next(t for t in periodic_tasks() if t.name == "review.expire_leases")
    assert run_periodic(engine, sweep) == {"leases_expired": 1}
    with transaction(engine) as s:
        assert [e.action for e in audit.entries(s, entity_id=claim.task_id)][0] == \
            "task.lease_expired"


def test_a_job_cancelled_while_its_worker_was_gone_is_not_run_again(engine: Engine) -> None:
    job_id = _enqueue(engine, "test.slow_write", {"reviewer_id": "r-cancelled"})
    assert jobs.claim(engine, "w1") is not None  # w1 takes it, then dies
    with transaction(engine) as s:
        assert jobs.cancel(s, job_id, actor="lead").status == "running"
    later = utcnow() + timedelta(hours=1)  # w1's lease has lapsed
    assert jobs.claim(engine, "w2", now=later) is None
    row = _job(engine, job_id)
    assert row.status == "cancelled" and row.workers == ["w1"]
    assert "r-cancelled" not in _reviewers(engine)


def test_job_parameters_must_be_plain_json(engine: Engine) -> None:
    for params in ({"x": float("nan")}, {"x": float("inf")}, {"x": object()}):
        with pytest.raises(InputError) as err, transaction(engine) as s:
            jobs.enqueue(s, "test.slow_write", params, actor="t")
        assert err.value.field == "params"


def test_a_job_refusing_its_input_fails_at_once_with_the_located_line(
        engine: Engine) -> None:
    job_id = _enqueue(engine, "test.bad_input", {"file": "p.jsonl"})
    # three attempts allowed, but the same input would be refused every time
    assert jobs.run_next(engine, "w1") == "failed"
    row = _job(engine, job_id)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.error == "p.jsonl, line 3, field 'chosen': missing required field"
