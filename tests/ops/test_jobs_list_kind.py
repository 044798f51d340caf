"""`hilt jobs list --kind` refuses a kind no job can have, as GET /v1/jobs?kind= does."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from hilt.ops.jobs import enqueue
from hilt.ops.periodic import _record_failure
from hilt.store.db import transaction

from .climain import run_main


def test_a_misspelt_kind_is_refused_not_listed_as_nothing(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    with transaction(engine) as s:
        enqueue(s, "export.reviews", {}, actor="t")
    code, out = run_main("jobs", "list", "--kind", "export.review", "--db", url)
    assert code == 2
    assert out.startswith("error: field '--kind': unknown job kind 'export.review'; one "
                          "of: ") and "export.reviews" in out
    code, out = run_main("jobs", "list", "--kind", "export.reviews", "--db", url)
    assert code == 0 and "export.reviews" in out


def test_a_kind_only_stored_jobs_have_is_listed(engine: Engine) -> None:
    """A failed periodic run is stored as kind periodic:NAME, which no module registers."""
    url = engine.url.render_as_string(hide_password=False)
    job_id = _record_failure(engine, "drift.monitors", RuntimeError("boom"))
    code, out = run_main("jobs", "list", "--kind", "periodic:drift.monitors", "--db", url)
    assert code == 0 and job_id is not None and job_id in out
