"""A time whose UTC form falls outside years 1 to 9999 is the client's error (422,
naming the query parameter when one carries it), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api


@pytest.mark.parametrize("path", [
    "/v1/labels?since=9999-12-31T23:59:59-23:59",
    "/v1/labels?since=0001-01-01T00:00:00%2B14:00",
    "/v1/drift/alerts?since=9999-12-31T23:59:59-01:00",
    "/v1/drift/alerts?since=0001-01-01T00:00:00%2B01:00",
])
def test_a_since_past_the_datetime_range_is_refused_naming_it(api: Api, path: str) -> None:
    response = api.client.get(path, headers=api.headers("lead"))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "since"
    assert "out of the range the database can store" in error["reason"]


def test_a_label_cursor_past_the_datetime_range_is_refused(api: Api) -> None:
    response = api.client.get("/v1/labels?after=0001-01-01T00:00:00%2B14:00~x",
                              headers=api.headers("lead"))
    assert response.status_code == 422, response.text
    assert "out of the range the database can store" in response.text


def test_times_at_the_edge_of_the_range_are_still_answered(api: Api) -> None:
    for path in ("/v1/labels?since=9999-12-31T23:59:59Z",
                 "/v1/drift/alerts?since=0001-01-01T00:00:00Z"):
        assert api.client.get(path, headers=api.headers("lead")).status_code == 200, path
