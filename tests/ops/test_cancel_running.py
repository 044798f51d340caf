"""Cancelling a running short job answers at once (409 / exit 2) instead of waiting for
the whole job; job and delivery status filters name the statuses they take."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.errors import Conflict, InputError
from hilt.ops import install, job_views, jobs, webhooks
from hilt.store.db import transaction

from . import job_kinds  # noqa: F401  (registers the test kinds)
from .climain import run_main


@pytest.mark.slow
def test_cancelling_a_running_short_job_is_refused_at_once(
        engine: Engine, db_url: str, tmp_path: Path) -> None:
    with transaction(engine) as s:
        token = create_token(s, role="service")[1]
    app = install(create_app(engine), scheduler=False, json_logs=False)
    auth = {"Authorization": f"Bearer {token}"}
    marker = tmp_path / "running.txt"
    with transaction(engine) as s:
        job_id = jobs.enqueue(s, "test.slow_write", {
            "reviewer_id": "r-tx", "sleep_s": 8, "marker_file": str(marker)}, actor="test")
    assert job_id is not None
    outcome: list[str | None] = []
    with TestClient(app) as client:
        assert client.get(f"/v1/jobs/{job_id}", headers=auth).status_code == 200
        worker = threading.Thread(target=lambda: outcome.append(jobs.run_next(engine, "w1")))
        worker.start()
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists()  # the job's transaction is open and holds its row

        started = time.monotonic()
        with pytest.raises(Conflict, match="cannot be interrupted"), \
                transaction(engine) as s:
            jobs.cancel(s, job_id, actor="lead")
        assert time.monotonic() - started < 4

        started = time.monotonic()
        answer = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
        assert answer.status_code == 409, answer.text
        assert "cannot be interrupted" in answer.text
        assert time.monotonic() - started < 4

        started = time.monotonic()
        code, output = run_main("jobs", "cancel", job_id, "--db", db_url)
        assert code == 2 and output.startswith(f"error: job {job_id} is running"), output
        assert time.monotonic() - started < 4
        worker.join(30)
    assert outcome == ["succeeded"]
    with transaction(engine) as s:
        row = jobs.get_job(s, job_id)
        assert row.status == "succeeded" and not row.cancel_requested


def test_a_running_long_job_can_still_be_cancelled(engine: Engine) -> None:
    with transaction(engine) as s:
        job_id = jobs.enqueue(s, "test.long", {"steps": 200, "step_s": 0.02}, actor="t")
    assert job_id is not None
    outcome: list[str | None] = []
    worker = threading.Thread(target=lambda: outcome.append(jobs.run_next(engine, "w1")))
    worker.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with transaction(engine) as s:
            if jobs.get_job(s, job_id).progress > 0:
                break
        time.sleep(0.02)
    with transaction(engine) as s:
        assert jobs.cancel(s, job_id, actor="lead").cancel_requested
    worker.join(10)
    assert outcome == ["cancelled"]


def test_unknown_status_filters_are_refused(engine: Engine, db_url: str) -> None:
    with transaction(engine) as s:
        with pytest.raises(InputError, match="succeeded") as err:
            job_views.list_jobs(s, status="bogus")
        assert err.value.field == "status"
        with pytest.raises(InputError, match="delivered") as err:
            webhooks.list_deliveries(s, status="bogus")
        assert err.value.field == "status"
        token = create_token(s, role="admin")[1]
    code, output = run_main("jobs", "list", "--status", "bogus", "--db", db_url)
    assert code == 2 and "queued, running, succeeded, failed, cancelled" in output
    code, output = run_main("webhook", "deliveries", "--status", "bogus", "--db", db_url)
    assert code == 2 and "pending, delivered, failed" in output
    app = install(create_app(engine), scheduler=False, json_logs=False)
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {token}"}
        bad = client.get("/v1/jobs", params={"status": "bogus"}, headers=auth)
        assert bad.status_code == 422 and "cancelled" in bad.text
        assert client.get("/v1/jobs", params={"status": "failed"},
                          headers=auth).json() == []
        assert client.get("/v1/webhooks/deliveries", params={"status": "nope"},
                          headers=auth).status_code == 422
