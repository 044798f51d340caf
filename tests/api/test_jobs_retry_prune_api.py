"""``POST /v1/jobs/{id}/retry`` and ``POST /v1/jobs/prune``: what ``hilt jobs retry`` and
``hilt jobs prune --older-than`` do, over HTTP, with the same checks, messages and audit
entries, for the roles that may cancel a job."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.ops import jobs
from hilt.review.queue import claim_next
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import AuditRow, ReviewerRow
from hilt.store.tables.ops import JobRow, WebhookDeliveryRow
from tests.api.conftest import Api
from tests.ops import job_kinds  # noqa: F401  (registers the test kinds)
from tests.ops.helpers import prunable_deliveries, workload


def _job(engine: Engine, status: str, *, kind: str = "test.long",
         attempts: int = 1, error: str | None = None,
         finished_days_ago: float | None = None) -> str:
    """A job of ``kind`` put straight into ``status``."""
    with transaction(engine) as s:
        job_id = jobs.enqueue(s, kind, {"steps": 1} if kind == "test.long" else {},
                              actor="test")
        assert job_id is not None
        row = s.get_one(JobRow, job_id)
        row.status, row.attempts, row.error = status, attempts, error
        if finished_days_ago is not None:
            row.finished_at = utcnow() - timedelta(days=finished_days_ago)
    return job_id


def _entries(engine: Engine, action: str) -> list[AuditRow]:
    with transaction(engine) as s:
        return list(s.execute(sa.select(AuditRow).where(AuditRow.action == action)
                              .order_by(AuditRow.seq)).scalars())


@pytest.mark.parametrize("role", ["lead", "service", "admin"])
def test_a_failed_job_is_queued_again_as_the_same_job(api: Api, engine: Engine,
                                                      role: str) -> None:
    job_id = _job(engine, "failed", error="boom")
    r = api.client.post(f"/v1/jobs/{job_id}/retry", headers=api.headers(role))
    assert r.status_code == 200, r.text
    view = r.json()
    # attempts kept, the kind's number given anew after them (test.long: 1)
    assert (view["id"], view["status"], view["attempts"], view["max_attempts"],
            view["error"]) == (job_id, "queued", 1, 2, None)
    (entry,) = _entries(engine, "job.requeue")
    assert entry.entity_id == job_id
    assert entry.payload["status_before"] == "failed" and entry.payload["error"] == "boom"
    # who asked: a person's reviewer id, else the token
    assert entry.actor == "lead-1" if role == "lead" else entry.actor.startswith("token:")


def test_a_cancelled_job_is_retried(api: Api, engine: Engine) -> None:
    job_id = _job(engine, "cancelled")
    r = api.client.post(f"/v1/jobs/{job_id}/retry", headers=api.headers("lead"))
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text


@pytest.mark.parametrize("status", ["queued", "running", "succeeded"])
def test_only_failed_or_cancelled_jobs_are_retried_409(api: Api, engine: Engine,
                                                       status: str) -> None:
    job_id = _job(engine, status)
    r = api.client.post(f"/v1/jobs/{job_id}/retry", headers=api.headers("lead"))
    assert r.status_code == 409, r.text
    # the message hilt jobs retry prints after "error: "
    assert r.json()["detail"] == (f"job {job_id} is {status}; only a failed or cancelled "
                                  "job can be retried")
    assert _entries(engine, "job.requeue") == []


def test_retrying_an_unknown_job_is_404_and_a_kind_nothing_registers_409(
        api: Api, engine: Engine) -> None:
    missing = api.client.post("/v1/jobs/job_nosuch/retry", headers=api.headers("lead"))
    assert missing.status_code == 404
    assert missing.json()["detail"] == "job 'job_nosuch' does not exist"
    job_id = _job(engine, "failed")
    with transaction(engine) as s:
        s.get_one(JobRow, job_id).kind = "gone.kind"
    orphan = api.client.post(f"/v1/jobs/{job_id}/retry", headers=api.headers("lead"))
    assert orphan.status_code == 409
    assert "'gone.kind', which no loaded module registers" in orphan.json()["detail"]


@pytest.mark.parametrize("role", ["reviewer", "adjudicator"])
def test_retry_and_prune_need_the_roles_that_may_cancel(api: Api, engine: Engine,
                                                        role: str) -> None:
    job_id = _job(engine, "failed")
    h = api.headers(role)
    assert api.client.post(f"/v1/jobs/{job_id}/cancel", headers=h).status_code == 403
    assert api.client.post(f"/v1/jobs/{job_id}/retry", headers=h).status_code == 403
    assert api.client.post("/v1/jobs/prune", json={"older_than": "0s"},
                           headers=h).status_code == 403
    assert api.client.post(f"/v1/jobs/{job_id}/retry").status_code == 401
    with transaction(engine) as s:
        assert s.get_one(JobRow, job_id).status == "failed"


def test_a_lead_reviewing_an_item_cannot_retry_the_export_of_it(
        api: Api, engine: Engine) -> None:
    with transaction(engine) as s:
        s.get_one(ReviewerRow, "lead-1").status = "calibrated"
    workload(engine, 2, overlap=2)
    with transaction(engine) as s:
        assert claim_next(s, "lead-1") is not None  # an unsubmitted review of one item
    job_id = _job(engine, "failed", kind="export.reviews")
    refused = api.client.post(f"/v1/jobs/{job_id}/retry", headers=api.headers("lead"))
    assert refused.status_code == 403, refused.text
    assert "'lead-1' is reviewing 1 item of this export" in refused.json()["detail"]
    with transaction(engine) as s:
        assert s.get_one(JobRow, job_id).status == "failed"
    served = api.client.post(f"/v1/jobs/{job_id}/retry", headers=api.headers("service"))
    assert served.status_code == 200 and served.json()["status"] == "queued"


def test_prune_deletes_only_what_finished_long_enough_ago(api: Api, engine: Engine) -> None:
    now = utcnow()
    _job(engine, "succeeded", finished_days_ago=40)
    _job(engine, "failed", finished_days_ago=40)
    new_done = _job(engine, "succeeded", finished_days_ago=1)
    queued = _job(engine, "queued")
    with transaction(engine) as s:
        prunable_deliveries(s, now)
    r = api.client.post("/v1/jobs/prune", json={"older_than": "30d"},
                        headers=api.headers("lead"))
    assert r.status_code == 200, r.text
    counts = r.json()
    assert (counts["jobs"], counts["deliveries"]) == (2, 1)
    with transaction(engine) as s:
        assert set(s.execute(sa.select(JobRow.id)).scalars()) == {new_done, queued}
        assert set(s.execute(sa.select(WebhookDeliveryRow.id)).scalars()) == \
            {"whd_2", "whd_3", "whd_4"}
    (entry,) = _entries(engine, "ops.prune")
    assert entry.actor == "lead-1"
    assert (entry.payload["jobs"], entry.payload["deliveries"]) == (2, 1)
    assert entry.payload["before"] == counts["before"]


@pytest.mark.parametrize("body, field, reason", [
    ({"older_than": "soon"}, "older_than",
     "'soon' is not a duration such as 30d, 12h, 90m or 45s"),
    ({"older_than": "30 days"}, "older_than",
     "'30 days' is not a duration such as 30d, 12h, 90m or 45s"),
    ({"older_than": "99999999w"}, "older_than", "'99999999w' is longer than 1000 years"),
])
def test_prune_refuses_a_duration_the_cli_refuses(api: Api, engine: Engine,
                                                  body: dict[str, str], field: str,
                                                  reason: str) -> None:
    job_id = _job(engine, "succeeded", finished_days_ago=40)
    r = api.client.post("/v1/jobs/prune", json=body, headers=api.headers("lead"))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field and r.json()["error"]["reason"] == reason
    with transaction(engine) as s:
        assert s.get(JobRow, job_id) is not None
    assert _entries(engine, "ops.prune") == []


@pytest.mark.parametrize("body", [{}, {"older_than": "30d", "jobs_only": True},
                                  {"older_than": 30}])
def test_prune_body_is_checked(api: Api, body: dict[str, object]) -> None:
    r = api.client.post("/v1/jobs/prune", json=body, headers=api.headers("lead"))
    assert r.status_code == 422, r.text
