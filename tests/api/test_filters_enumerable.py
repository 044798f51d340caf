"""A list filter that takes one of a fixed set of values refuses any other (422 naming
the parameter and listing the valid values) rather than answering an empty list that
reads as "there are none"."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from sqlalchemy.engine import Engine

from hilt.ops.jobs import kinds
from hilt.quality.drift.windows import MONITORS
from hilt.review.records import PROVENANCE_KINDS
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.ops import JobRow
from tests.api.conftest import Api


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    # The checks come before any query: SQLite only.
    return sqlite_engine


@pytest.mark.parametrize(("path", "field", "what", "valid"), [
    ("/v1/labels?provenance=Gold", "provenance", "provenance", lambda: PROVENANCE_KINDS),
    ("/v1/labels?provenance=nope", "provenance", "provenance", lambda: PROVENANCE_KINDS),
    ("/v1/drift/alerts?monitor=bogus", "monitor", "monitor", lambda: MONITORS),
    # read when the test runs: other test modules register job kinds of their own
    ("/v1/jobs?kind=bogus", "kind", "job kind", lambda: sorted(kinds())),
])
def test_a_value_no_entry_can_have_is_refused_listing_the_valid_ones(
        api: Api, path: str, field: str, what: str,
        valid: Callable[[], Sequence[str]]) -> None:
    response = api.client.get(path, headers=api.headers("lead"))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    value = path.rsplit("=", 1)[1]
    assert error["field"] == field
    assert error["reason"] == f"unknown {what} {value!r}; one of: {', '.join(valid())}"


@pytest.mark.parametrize("path", [
    *(f"/v1/labels?provenance={kind}" for kind in PROVENANCE_KINDS),
    *(f"/v1/drift/alerts?monitor={monitor}" for monitor in MONITORS),
    *(f"/v1/jobs?kind={kind}" for kind in kinds()),
])
def test_every_valid_value_still_filters(api: Api, path: str) -> None:
    response = api.client.get(path, headers=api.headers("lead"))
    assert response.status_code == 200, response.text


def test_a_job_kind_no_module_registers_any_more_still_lists_its_jobs(
        api: Api, engine: Engine) -> None:
    now = utcnow()
    with transaction(engine) as s:
        s.add(JobRow(id="job_old", kind="retired.kind", params={}, status="succeeded",
                     attempts=1, max_attempts=1, run_after=now, progress=1.0, workers=[],
                     created_by="cli", created_at=now))
    response = api.client.get("/v1/jobs?kind=retired.kind", headers=api.headers("lead"))
    assert response.status_code == 200, response.text
    assert [job["id"] for job in response.json()] == ["job_old"]
