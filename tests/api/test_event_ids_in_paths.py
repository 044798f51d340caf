"""An event id is the caller's own text: one that holds "/", "?", "#", "%" or a space
is read back over HTTP like any other, by the URL with the id percent-encoded (and, for
"/", also as it is), and by the Python client."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from hilt.client import HiltClient
from tests.api.conftest import Api

IDS = ["a/b", "runs/2030/01/x", "q?x=1", "frag#1", "100%", "two words", "/lead"]


def _ingest(api: Api, ids: list[str]) -> None:
    body = {"events": [{"id": i, "interaction": {"prompt": f"p {i}"},
                        "responses": [{"text": "r"}]} for i in ids]}
    made = api.client.post("/v1/events", json=body, headers=api.headers("service"))
    assert made.status_code == 200 and made.json()["new"] == len(ids), made.text


@pytest.mark.parametrize("event_id", IDS)
def test_an_event_id_with_url_characters_is_read_back(api: Api, event_id: str) -> None:
    _ingest(api, [event_id, "a"])
    got = api.client.get(f"/v1/events/{quote(event_id, safe='')}",
                         headers=api.headers("lead"))
    assert got.status_code == 200, got.text
    assert got.json()["id"] == event_id
    assert got.json()["interaction"]["prompt"] == f"p {event_id}"
    with HiltClient("http://testserver", api.tokens["lead"], http=api.client) as c:
        assert c.event(event_id)["id"] == event_id


def test_a_slash_sent_as_is_reads_the_same_event(api: Api) -> None:
    _ingest(api, ["a/b", "a"])
    got = api.client.get("/v1/events/a/b", headers=api.headers("lead"))
    assert got.status_code == 200 and got.json()["id"] == "a/b"
    assert api.client.get("/v1/events/a/c", headers=api.headers("lead")).status_code == 404
    # the list is still the list, not an event with an empty id
    listed = api.client.get("/v1/events", headers=api.headers("lead"))
    assert listed.status_code == 200 and "events" in listed.json()
