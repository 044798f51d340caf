"""Out-of-range limits, versions and times are refused naming the parameter (never
clamped, never answered as a status nor as an unnamed database error); an optional body
may be left out; the export declares the media type it streams."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import transaction
from tests.api.conftest import Api
from tests.drift.test_alert_status_and_bridge_size import stored_alert
from tests.review.helpers import HARM


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    # Validation comes before any query: SQLite only.
    return sqlite_engine


def _refused(api: Api, method: str, path: str, where: list[str], **kw: object) -> None:
    response = api.client.request(method, path, headers=api.headers("lead"), **kw)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [where], response.text


@pytest.mark.parametrize(("path", "name"), [
    ("/v1/drift/alerts?limit=0", "limit"),
    ("/v1/drift/alerts?limit=-1", "limit"),
    ("/v1/drift/alerts?limit=1001", "limit"),
    ("/v1/drift/alerts?limit=1000000", "limit"),
    ("/v1/drift/lineage/mv-1?limit=-1", "limit"),
    ("/v1/drift/lineage/mv-1?limit=1001", "limit"),
])
def test_a_limit_out_of_range_is_refused_not_clamped(api: Api, path: str,
                                                     name: str) -> None:
    _refused(api, "GET", path, ["query", name])


def test_the_limits_at_their_bounds_are_taken(api: Api) -> None:
    for path, code in (("/v1/drift/alerts?limit=1", 200), ("/v1/drift/alerts?limit=1000", 200),
                       # within bounds: the unknown model version is what answers
                       ("/v1/drift/lineage/mv-1?limit=0", 404),
                       ("/v1/drift/lineage/mv-1?limit=1000", 404)):
        response = api.client.get(path, headers=api.headers("lead"))
        assert response.status_code == code, (path, response.text)


def test_the_limits_are_declared_in_the_schema(api: Api) -> None:
    paths = api.client.get("/openapi.json", headers=api.headers("lead")).json()["paths"]
    for path, low in (("/v1/drift/alerts", 1), ("/v1/drift/lineage/{model_version}", 0)):
        limit = next(p for p in paths[path]["get"]["parameters"] if p["name"] == "limit")
        assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (low, 1000)


@pytest.mark.parametrize(("old", "new", "name"), [
    ("-5", "1", "old_version"),
    ("0", "1", "old_version"),
    ("99999999999999999999", "1", "old_version"),
    ("1", "-5", "new_version"),
    ("1", "2147483648", "new_version"),
])
def test_compatibility_versions_out_of_range_are_refused_naming_the_version(
        api: Api, old: str, new: str, name: str) -> None:
    _refused(api, "GET", f"/v1/drift/compatibility/harm/{old}/{new}", ["path", name])


def test_compatibility_reads_each_version_from_its_own_place(api: Api,
                                                             engine: Engine) -> None:
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")  # harm@1 only
    for path in ("harm/1/7", "harm/7/1"):  # read from one place, 1/7 would be 1/1: a 200
        response = api.client.get(f"/v1/drift/compatibility/{path}",
                                  headers=api.headers("lead"))
        assert response.status_code == 404, (path, response.text)
        assert "harm@7 is not published" in response.text


@pytest.mark.parametrize("now", ["0001-01-01T00:00:00", "0001-01-01T00:00:00+01:00",
                                 "9999-12-31T23:59:59-01:00"])
def test_a_run_whose_windows_leave_the_storable_years_is_refused_naming_now(
        api: Api, now: str) -> None:
    response = api.client.post("/v1/drift/run", headers=api.headers("lead"),
                               json={"now": now, "dry_run": True})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "now" and "years 1 to 9999" in error["reason"]


def test_a_run_near_the_end_of_the_storable_years_still_runs(api: Api) -> None:
    response = api.client.post("/v1/drift/run", headers=api.headers("lead"),
                               json={"now": "9999-12-31T12:00:00Z", "dry_run": True})
    assert response.status_code == 200, response.text


def test_an_alert_is_acknowledged_without_a_body(api: Api, engine: Engine) -> None:
    alert_id = stored_alert(engine)
    response = api.client.post(f"/v1/drift/alerts/{alert_id}/ack",
                               headers=api.headers("lead"))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "acknowledged" and response.json()["note"] is None
    # a body is still checked when there is one
    _refused(api, "POST", "/v1/drift/alerts/da_test/ack", ["body", "nte"],
             json={"nte": "seen"})


def test_the_review_export_declares_json_lines(api: Api) -> None:
    paths = api.client.get("/openapi.json", headers=api.headers("lead")).json()["paths"]
    content = paths["/v1/exports/reviews.jsonl"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["application/x-ndjson"]
    response = api.client.get("/v1/exports/reviews.jsonl", headers=api.headers("service"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
