"""What an operator reads: ``hilt jobs work`` says what it ran, and job listings (CLI
and HTTP) show who holds a running job's lease and until when."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.ops import install, job_views, jobs
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.ops import JobRow

from . import job_kinds  # noqa: F401  (registers the test kinds)
from .climain import run_main


@pytest.fixture
def db(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HILT_EXPORT_DIR", str(tmp_path / "exports"))
    return engine.url.render_as_string(hide_password=False)


def _enqueue(engine: Engine, kind: str, params: dict[str, object]) -> str:
    with transaction(engine) as s:
        job_id = jobs.enqueue(s, kind, params, actor="test")
    assert job_id is not None
    return job_id


def test_jobs_work_says_there_was_nothing_to_run(db: str) -> None:
    code, output = run_main("jobs", "work", "--db", db)
    assert code == 0, output
    assert output.strip() == "no queued jobs"
    code, output = run_main("jobs", "work", "--json", "--db", db)
    assert code == 0, output
    assert json.loads(output) == {"ran": 0, "counts": {}, "jobs": [], "stopped_by": None}


def test_jobs_work_names_each_job_it_ran_and_how_it_ended(engine: Engine, db: str) -> None:
    export = _enqueue(engine, "export.reviews", {})
    bad = _enqueue(engine, "test.bad_input", {"file": "pairs.jsonl"})
    code, output = run_main("jobs", "work", "--db", db)
    assert code == 1, output  # a job it ran failed
    lines = output.splitlines()
    assert "ran 2 jobs:" in lines
    assert any(export in line and "export.reviews" in line and "succeeded" in line
               for line in lines), output
    assert any(bad in line and "test.bad_input" in line
               and "failed: pairs.jsonl, line 3, field 'chosen'" in line
               for line in lines), output

    again = _enqueue(engine, "export.reviews", {})
    code, output = run_main("jobs", "work", "--json", "--db", db)
    assert code == 0, output
    ran = json.loads(output[output.index("{"):])
    assert ran["ran"] == 1 and ran["counts"] == {"succeeded": 1}
    assert ran["stopped_by"] is None
    assert [(j["id"], j["kind"], j["status"]) for j in ran["jobs"]] == [
        (again, "export.reviews", "succeeded")]


def _claimed(engine: Engine, worker_id: str) -> str:
    job_id = _enqueue(engine, "test.long", {"steps": 1})
    claimed = jobs.claim(engine, worker_id)
    assert claimed is not None and claimed.id == job_id
    return job_id


def test_the_lease_of_a_running_job_names_worker_host_pid_and_expiry(engine: Engine
                                                                     ) -> None:
    job_id = _claimed(engine, "gpu-1@train-box:4242/0")
    with transaction(engine) as s:
        row = jobs.get_job(s, job_id)
        lease = job_views.job_view(row)["lease"]
        expires = row.lease_expires_at
    assert expires is not None
    assert lease == {"worker": "gpu-1@train-box:4242/0", "host": "train-box", "pid": 4242,
                     "expires_at": expires.isoformat(), "expired": False}
    with transaction(engine) as s:  # its worker stopped reporting: the lease lapsed
        row = jobs.get_job(s, job_id)
        late = job_views.job_view(row, now=expires + timedelta(seconds=1))["lease"]
    assert late is not None and late["expired"] is True
    # an id of another form is shown as it is
    with transaction(engine) as s:
        s.get_one(JobRow, job_id).locked_by = "w1"
    with transaction(engine) as s:
        assert job_views.lease_view(jobs.get_job(s, job_id)) == {
            "worker": "w1", "host": None, "pid": None, "expires_at": expires.isoformat(),
            "expired": False}


def test_finished_and_queued_jobs_have_no_lease(engine: Engine) -> None:
    job_id = _claimed(engine, "host-a:17")
    with transaction(engine) as s:
        queued = jobs.get_job(s, _enqueue(engine, "test.long", {}))
        assert job_views.job_view(queued)["lease"] is None
    with transaction(engine) as s:
        row = s.get_one(JobRow, job_id)
        row.status, row.finished_at = "succeeded", utcnow()  # locked_by stays set
    with transaction(engine) as s:
        assert job_views.job_view(jobs.get_job(s, job_id))["lease"] is None


def test_jobs_list_and_show_print_the_lease(engine: Engine, db: str) -> None:
    job_id = _claimed(engine, "gpu-1@train-box:4242/0")
    with transaction(engine) as s:
        expires = jobs.get_job(s, job_id).lease_expires_at
    assert expires is not None
    until = expires.strftime("%Y-%m-%d %H:%M:%SZ")
    code, output = run_main("jobs", "list", "--db", db)
    assert code == 0, output
    header, row = output.splitlines()[:2]
    assert header.split() == ["ID", "KIND", "STATUS", "PROGRESS", "ATTEMPTS", "CREATED",
                              "LEASE"]
    assert row.startswith(job_id) and f"gpu-1@train-box:4242/0 until {until}" in row
    code, output = run_main("jobs", "show", job_id, "--db", db)
    assert code == 0, output
    assert (f"  lease     held by gpu-1@train-box:4242/0 (host train-box, pid 4242), "
            f"until {until}") in output.splitlines()
    code, output = run_main("jobs", "show", job_id, "--json", "--db", db)
    assert code == 0, output
    assert json.loads(output)["lease"]["pid"] == 4242
    code, output = run_main("jobs", "list", "--json", "--db", db)
    assert code == 0, output
    assert json.loads(output)[0]["lease"]["worker"] == "gpu-1@train-box:4242/0"


@pytest.fixture
def client(engine: Engine) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with transaction(engine) as s:
        token = create_token(s, role="service")[1]
    app = install(create_app(engine), scheduler=False, json_logs=False)
    with TestClient(app) as c:
        yield c, {"Authorization": f"Bearer {token}"}


def test_the_api_shows_the_lease(engine: Engine,
                                 client: tuple[TestClient, dict[str, str]]) -> None:
    c, auth = client
    job_id = _claimed(engine, "host-b:99/1")
    shown = c.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert shown["lease"]["worker"] == "host-b:99/1"
    assert (shown["lease"]["host"], shown["lease"]["pid"]) == ("host-b", 99)
    assert shown["lease"]["expired"] is False and shown["lease"]["expires_at"]
    listed = c.get("/v1/jobs", params={"status": "running"}, headers=auth).json()
    assert [j["lease"] for j in listed] == [shown["lease"]]


def test_a_named_worker_id_carries_host_and_pid() -> None:
    import os
    import socket

    from hilt.ops.scheduler import worker_name

    here = f"{socket.gethostname()}:{os.getpid()}"
    assert worker_name() == here and worker_name("gpu-1") == f"gpu-1@{here}"
    assert job_views.worker_host_pid(worker_name("gpu-1") + "/3") == (socket.gethostname(),
                                                                 os.getpid())
