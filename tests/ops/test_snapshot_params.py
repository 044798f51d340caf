"""A quality.snapshot job's parameter is checked when the job is queued."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.ops.jobs import enqueue, get_job, run_next
from hilt.store.db import transaction

from .climain import run_main


@pytest.mark.parametrize(("param", "message"), [
    ("window_hours=abc", "window_hours must be a number of hours above 0"),
    ("window_hours=nan", "window_hours must be a number of hours above 0"),
    ("window_hours=0", "window_hours must be a number of hours above 0"),
    ("window_hours=1e12", "at most 876000"),
    ("windw=3", "unknown parameter 'windw'; quality.snapshot takes: window_hours"),
])
def test_the_command_refuses_a_bad_window_and_queues_nothing(
        sqlite_engine: Engine, param: str, message: str) -> None:
    url = sqlite_engine.url.render_as_string(hide_password=False)
    code, out = run_main("jobs", "start", "quality.snapshot", "-p", param, "--db", url)
    assert code == 2 and out.startswith(f"error: field '--param {param.split('=')[0]}': ")
    assert message in out
    assert run_main("jobs", "list", "--db", url) == (0, "no jobs\n")


def test_code_gets_the_same_refusal_and_a_good_window_runs(engine: Engine) -> None:
    with pytest.raises(InputError, match="params.window_hours"), transaction(engine) as s:
        enqueue(s, "quality.snapshot", {"window_hours": True}, actor="t")
    with transaction(engine) as s:
        job_id = enqueue(s, "quality.snapshot", {"window_hours": "48"}, actor="t")
    assert run_next(engine, "w") == "succeeded"
    with transaction(engine) as s:
        assert get_job(s, job_id).result["window_hours"] == 48.0
