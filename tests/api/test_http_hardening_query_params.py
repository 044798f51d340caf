"""Every API endpoint refuses a query parameter it does not declare (422 naming it),
after the token check; a misspelt filter never returns everything."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.api.conftest import Api


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    # The check does not depend on the database: SQLite only.
    return sqlite_engine


@pytest.mark.parametrize(("role", "path", "known"), [
    ("service", "/v1/exports/reviews.jsonl?stauts=gold", "status"),
    ("service", "/v1/events?limit=1000&sourc=http", "after, limit, source"),
    ("service", "/v1/jobs?stauts=failed", "after, kind, limit, status"),
    ("lead", "/v1/drift/alerts?statuss=open", "after, limit, monitor, since, status"),
    ("lead", "/v1/webhooks/deliveries?staus=failed",
     "after, limit, status, subscription_id"),
    ("lead", "/v1/datasets?nme=train", "name"),
    ("lead", "/v1/queue/stats?stauts=x", None),
    ("lead", "/openapi.json?stauts=x", None),
])
def test_misspelt_query_parameters_are_refused_naming_them(
        api: Api, role: str, path: str, known: str | None) -> None:
    name = path.rsplit("&", 1)[-1].split("?")[-1].split("=")[0]
    response = api.client.get(path, headers=api.headers(role))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["field"] == name
    takes = f"known: {known}" if known else "this endpoint takes no query parameters"
    assert body["error"]["reason"] == f"unknown parameter {name!r}; {takes}"


def test_declared_query_parameters_still_work(api: Api) -> None:
    for role, path in (("service", "/v1/events?limit=5&source=http"),
                       ("service", "/v1/jobs?status=failed&limit=3"),
                       ("lead", "/v1/drift/alerts?status=open&limit=5"),
                       ("lead", "/v1/datasets?name=train")):
        assert api.client.get(path, headers=api.headers(role)).status_code == 200, path
    facts = api.client.get("/v1/datasets/0123456789abcdef/facts?suite=a&suite=b",
                           headers=api.headers("lead"))
    assert facts.status_code == 404  # a repeated declared parameter passes the check


def test_labels_refuse_unknown_filters_as_they_always_did(api: Api) -> None:
    response = api.client.get("/v1/labels?provenanse=gold", headers=api.headers("lead"))
    assert response.status_code == 422
    assert response.json()["error"] == {
        "file": None, "line": None, "field": "provenanse",
        "reason": "unknown parameter 'provenanse'; known: after, limit, min_confidence, "
                  "provenance, rubric_id, since"}


def test_posts_refuse_unknown_query_parameters_too(api: Api) -> None:
    # dry_run belongs in the body: as a query parameter it would be ignored and the
    # alerts stored
    response = api.client.post("/v1/drift/run?dry_run=true", json={},
                               headers=api.headers("lead"))
    assert response.status_code == 422 and response.json()["error"]["field"] == "dry_run"


def test_the_token_is_checked_before_the_query(api: Api) -> None:
    assert api.client.get("/v1/jobs?stauts=x").status_code == 401
    bad = {"Authorization": "Bearer hilt_not-a-real-token"}
    assert api.client.get("/v1/jobs?stauts=x", headers=bad).status_code == 401


def test_pages_keep_their_own_query_parameters(api: Api) -> None:
    client = TestClient(api.client.app)
    page = client.get("/ui/signin?next=/ui/lead&msg=signed_out")
    assert page.status_code == 200 and "Signed out." in page.text
