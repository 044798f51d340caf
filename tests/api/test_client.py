"""The Python HTTP client against the real app (in-process transport)."""

from __future__ import annotations

import pytest

from hilt.client import HiltClient, HiltError
from tests.api.conftest import Api


def client_for(api: Api, role: str) -> HiltClient:
    return HiltClient("http://testserver", api.tokens[role], http=api.client)


def test_client_ingests_in_batches(api: Api) -> None:
    events = [{"interaction": {"prompt": f"p{i}"}, "responses": [{"text": "r"}]}
              for i in range(25)]
    with client_for(api, "service") as c:
        assert c.ingest(events, batch_size=10)["new"] == 25
        assert c.ingest(events, batch_size=10)["duplicates"] == 25
        assert c.health()["status"] == "ok"


def test_client_raises_with_status_and_detail(api: Api) -> None:
    with client_for(api, "reviewer") as c, pytest.raises(HiltError) as err:
        c.ingest([{"interaction": {"prompt": "x"}}])
    assert err.value.status == 403


def test_client_sends_batches_side_by_side_and_stops_at_a_failed_one(api: Api) -> None:
    events = [{"interaction": {"prompt": f"q{i}"}, "responses": [{"text": "r"}]}
              for i in range(25)]
    with client_for(api, "service") as c:
        first = c.ingest(events, batch_size=4, concurrency=3)
        assert (first["received"], first["new"]) == (25, 25)
        assert c.ingest(events, batch_size=4, concurrency=3)["duplicates"] == 25
        bad = [*events[:8], {"interaction": {}}, *events[9:]]  # the third batch fails
        with pytest.raises(HiltError) as err:
            c.ingest(bad, batch_size=4, concurrency=2)
        assert err.value.status == 422 and err.value.detail["error"]["line"] == 0
        with pytest.raises(ValueError):
            c.ingest(events, concurrency=0)
