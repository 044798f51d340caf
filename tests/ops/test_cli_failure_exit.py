"""``hilt jobs run-periodic`` and ``hilt jobs work`` exit 1 when something they ran
failed, and name each failure in one line on stderr, instead of exiting 0 (and, for
run-periodic, printing null with a traceback)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from hilt.ops import jobs
from hilt.ops.periodic import PeriodicTask
from hilt.store.db import transaction
from hilt.store.tables.ops import JobRow

from . import job_kinds  # noqa: F401  (registers the test kinds)
from .climain import run_main


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _broken(_session: Any, _now: datetime) -> dict[str, Any]:
    raise RuntimeError("the drift store is gone")


def _fine(_session: Any, _now: datetime) -> dict[str, Any]:
    return {"checked": 3}


def test_run_periodic_names_a_failed_task_and_exits_1(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = [PeriodicTask("test.fine", 60, _fine), PeriodicTask("test.broken", 60, _broken)]
    monkeypatch.setattr("hilt.ops.builtin.periodic_tasks", lambda: tasks)
    code, out = run_main("jobs", "run-periodic", "--db", _url(engine))
    assert code == 1, out
    assert "Traceback" not in out
    with transaction(engine) as s:
        recorded = s.query(JobRow).filter_by(kind="periodic:test.broken").one()
        assert recorded.status == "failed" and "the drift store is gone" in recorded.error
    printed = json.loads(out[:out.rindex("}") + 1])
    assert printed == {"test.fine": {"checked": 3},
                       "test.broken": {"failed": "RuntimeError: the drift store is gone",
                                       "job_id": recorded.id}}
    assert out.splitlines()[-1] == ("error: periodic task test.broken failed: RuntimeError: "
                                    f"the drift store is gone (recorded as job {recorded.id})")
    code, out = run_main("jobs", "run-periodic", "test.fine", "--db", _url(engine))
    assert code == 0, out


def test_jobs_work_exits_1_naming_each_failed_job(engine: Engine) -> None:
    with transaction(engine) as s:
        bad = jobs.enqueue(s, "test.bad_input", {"file": "pairs.jsonl"}, actor="test")
        crash = jobs.enqueue(s, "test.crash_midway", {"reviewer_id": "r"}, actor="test")
        fine = jobs.enqueue(s, "test.long", {"steps": 1, "step_s": 0}, actor="test")
    code, out = run_main("jobs", "work", "--json", "--db", _url(engine))
    assert code == 1, out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: job {bad} (test.bad_input) failed: pairs.jsonl, line 3, field 'chosen': "
        "missing required field",
        f"error: job {crash} (test.crash_midway) attempt 1 of 2 failed, queued again: "
        "RuntimeError: crashed halfway",
        f"error: job {crash} (test.crash_midway) failed: RuntimeError: crashed halfway"]
    assert fine not in "\n".join(errors)
    code, out = run_main("jobs", "work", "--db", _url(engine))
    assert (code, out.strip()) == (0, "no queued jobs")
