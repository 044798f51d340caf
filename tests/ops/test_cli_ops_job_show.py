"""``hilt jobs show``: a job's last progress note is shown as current only while the job
runs; once it has ended (or waits for another attempt) the note is a past report."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from hilt.ops import jobs
from hilt.store.db import transaction
from hilt.store.tables.ops import JobRow

from . import job_kinds  # noqa: F401  (registers the test kinds)
from .climain import run_main

NOTE = "eval.check: child process 16132 running"


@pytest.fixture
def db(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HILT_EXPORT_DIR", str(tmp_path / "exports"))
    return engine.url.render_as_string(hide_password=False)


def _running_with_note(engine: Engine) -> str:
    """A claimed ``test.long`` job that reported 40 % with :data:`NOTE`."""
    with transaction(engine) as s:
        job_id = jobs.enqueue(s, "test.long", {"steps": 1}, actor="test")
    claimed = jobs.claim(engine, "w1@box:4242/0")
    assert claimed is not None and claimed.id == job_id
    jobs.JobContext(engine, job_id, "w1@box:4242/0", claimed.attempt,
                    claimed.params).progress(0.4, NOTE)
    return job_id


def _show(db: str, job_id: str) -> dict[str, str]:
    code, output = run_main("jobs", "show", job_id, "--db", db)
    assert code == 0, output
    fields = {}
    for line in output.splitlines()[1:]:
        if line.startswith("  ") and not line.startswith("    "):
            fields[line[2:11].strip()] = line[12:]
    return fields


def test_a_running_job_shows_its_progress_note_as_current(engine: Engine, db: str) -> None:
    job_id = _running_with_note(engine)
    fields = _show(db, job_id)
    assert fields["status"] == "running"
    assert fields["progress"] == f"40% ({NOTE})"
    assert "last note" not in fields


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled", "queued"])
def test_an_ended_job_shows_its_last_note_as_a_past_report(engine: Engine, db: str,
                                                           status: str) -> None:
    job_id = _running_with_note(engine)
    with transaction(engine) as s:  # as the worker leaves it (queued: a retry to come)
        row = s.get(JobRow, job_id)
        assert row is not None
        row.status, row.locked_by, row.lease_expires_at = status, None, None
        if status == "succeeded":
            row.progress = 1.0
    fields = _show(db, job_id)
    assert fields["status"] == status
    assert fields["progress"] == ("100%" if status == "succeeded" else "40%")
    assert fields["last note"] == f'"{NOTE}", reported while attempt 1 ran'


def test_a_job_run_to_its_end_does_not_show_its_note_as_current(engine: Engine,
                                                                db: str) -> None:
    with transaction(engine) as s:
        job_id = jobs.enqueue(s, "test.long", {"steps": 2, "step_s": 0}, actor="test")
    code, output = run_main("jobs", "work", "--db", db)
    assert code == 0 and "succeeded" in output, output
    fields = _show(db, job_id)
    assert fields["progress"] == "100%"
    assert fields["last note"] == '"step 2", reported while attempt 1 ran'
