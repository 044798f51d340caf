"""Every change of a job's status is audited in its own transaction: claims (also of
a job whose worker died), and failed attempts sent back to the queue."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine

from hilt.ops import jobs
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow

from . import job_kinds  # noqa: F401  (registers the test kinds)


def _enqueue(engine: Engine, kind: str, params: dict[str, str]) -> str:
    with transaction(engine) as s:
        job_id = jobs.enqueue(s, kind, params, actor="test")
    assert job_id is not None
    return job_id


def _trail(engine: Engine, job_id: str) -> list[tuple[str, dict[str, object]]]:
    with transaction(engine) as s:
        assert audit.verify(s).ok
        return [(e.action, dict(e.payload)) for e in
                reversed(audit.entries(s, entity_id=job_id))]


def test_a_failed_attempt_that_goes_back_to_the_queue_is_audited(engine: Engine) -> None:
    job_id = _enqueue(engine, "test.crash_midway", {"reviewer_id": "r"})
    assert jobs.run_next(engine, "w1") == "queued"
    trail = _trail(engine, job_id)
    assert [action for action, _ in trail] == ["job.enqueue", "job.claim", "job.retry"]
    claim, retry = trail[1][1], trail[2][1]
    assert claim == {"kind": "test.crash_midway", "attempt": 1, "worker": "w1",
                     "lease_lapsed": False}
    assert retry["attempts"] == 1 and retry["max_attempts"] == 2
    assert "crashed halfway" in str(retry["error"]) and retry["run_after"]
    assert jobs.run_next(engine, "w2") == "failed"
    assert [action for action, _ in _trail(engine, job_id)] == [
        "job.enqueue", "job.claim", "job.retry", "job.claim", "job.failed"]


def test_a_job_taken_over_after_its_lease_lapsed_is_audited(engine: Engine) -> None:
    job_id = _enqueue(engine, "test.slow_write", {"reviewer_id": "r-lapsed"})
    assert jobs.claim(engine, "w1") is not None
    later = utcnow() + timedelta(seconds=jobs.lease_seconds() + 1)
    taken = jobs.claim(engine, "w2", now=later)
    assert taken is not None and taken.attempt == 2
    trail = _trail(engine, job_id)
    assert [action for action, _ in trail] == ["job.enqueue", "job.claim", "job.claim"]
    assert trail[2][1] == {"kind": "test.slow_write", "attempt": 2, "worker": "w2",
                           "lease_lapsed": True}
