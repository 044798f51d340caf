"""POST /v1/events: batches, idempotency, all-or-nothing with index and field."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.review.escalation import load_rule_file, publish_rule_set
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewTaskRow
from tests.api.conftest import Api
from tests.review.helpers import SAFETY_RULES, event, publish_examples


def batch(n: int, start: int = 0) -> dict:
    return {"events": [{"interaction": {"prompt": f"p{i}"}, "responses": [{"text": "r"}],
                        "context": {"consent": ["train"]}} for i in range(start, start + n)]}


def test_batch_ingest_is_idempotent(api: Api) -> None:
    h = api.headers("service")
    first = api.client.post("/v1/events", json=batch(10), headers=h).json()
    again = api.client.post("/v1/events", json=batch(12), headers=h).json()
    assert (first["new"], first["duplicates"]) == (10, 0)
    assert (again["new"], again["duplicates"]) == (2, 10)
    page = api.client.get("/v1/events?limit=100", headers=h).json()
    assert len(page["events"]) == 12
    one = api.client.get(f"/v1/events/{page['events'][0]['id']}",
                         headers=api.headers("lead")).json()
    assert one["interaction"]["prompt"].startswith("p")


def test_bad_event_rejects_whole_batch_naming_index_and_field(api: Api) -> None:
    h = api.headers("service")
    body = batch(3)
    body["events"][2]["responses"] = [{"txt": "typo"}]
    resp = api.client.post("/v1/events", json=body, headers=h)
    assert resp.status_code == 422
    err = resp.json()["error"]
    assert err["line"] == 2 and err["field"] == "responses[0].text"
    assert api.client.get("/v1/events", headers=h).json()["events"] == []


def test_reviewer_cannot_ingest(api: Api) -> None:
    resp = api.client.post("/v1/events", json=batch(1), headers=api.headers("reviewer"))
    assert resp.status_code == 403


def test_stored_id_with_other_content_rejects_batch_and_empty_batch_is_a_no_op(
        api: Api) -> None:
    h = api.headers("service")
    stored = batch(2)
    for i, record in enumerate(stored["events"]):
        record["id"] = f"fixed-{i}"
    assert api.client.post("/v1/events", json=stored, headers=h).json()["new"] == 2
    changed = batch(3, start=10)
    changed["events"][2]["id"] = "fixed-1"
    resp = api.client.post("/v1/events", json=changed, headers=h)
    assert resp.status_code == 422
    assert (resp.json()["error"]["line"], resp.json()["error"]["field"]) == (2, "id")
    assert "already stored" in resp.json()["error"]["reason"]
    empty = api.client.post("/v1/events", json={"events": []}, headers=h).json()
    assert (empty["received"], empty["new"], empty["duplicates"]) == (0, 0, 0)
    assert len(api.client.get("/v1/events", headers=h).json()["events"]) == 2


def test_batch_runs_the_active_escalation_rules_on_new_events(api: Api,
                                                              engine: Engine) -> None:
    publish_examples(engine)
    with transaction(engine) as s:
        publish_rule_set(s, load_rule_file(SAFETY_RULES), actor="lead")
    body = {"events": [event(1, scores={"guardrail": 0.95}), event(2)]}
    h = api.headers("service")
    first = api.client.post("/v1/events", json=body, headers=h).json()
    assert (first["new"], first["escalated"]) == (2, 1)
    assert api.client.post("/v1/events", json=body, headers=h).json()["escalated"] == 0
    with transaction(engine) as s:
        assert s.execute(sa.select(ReviewTaskRow.event_id)).scalars().all() == ["ev00001"]


def test_malformed_bodies_are_refused_with_the_reason_and_the_body_is_documented(
        api: Api) -> None:
    h = {**api.headers("service"), "Content-Type": "application/json"}
    for content, reason in [(b'{"events": [', "invalid JSON"),
                            (b'{"events": {}}', "valid array"),
                            (b"[1]", 'JSON object {"events"')]:
        resp = api.client.post("/v1/events", content=content, headers=h)
        assert resp.status_code == 422 and reason in resp.json()["detail"], resp.text
    schema = api.client.get("/openapi.json", headers=h).json()
    body = schema["paths"]["/v1/events"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["$ref"] == "#/components/schemas/EventBatch"
    events = schema["components"]["schemas"]["EventBatch"]["properties"]["events"]
    assert events["items"]["$ref"] == "#/components/schemas/FeedbackEvent"
    assert "FeedbackEvent" in schema["components"]["schemas"]


def test_nul_character_is_a_client_error_naming_index_and_field(api: Api) -> None:
    body = batch(3)
    body["events"][1]["responses"] = [{"text": "a\u0000b"}]
    resp = api.client.post("/v1/events", json=body, headers=api.headers("service"))
    assert resp.status_code == 422, resp.text
    assert (resp.json()["error"]["line"], resp.json()["error"]["field"]) == (
        1, "responses[0].text")
    assert api.client.get("/v1/events", headers=api.headers("service")).json()["events"] == []


def test_adjudicators_read_only_events_open_to_human_review(api: Api) -> None:
    """An adjudicator is a person: like a reviewer, they see no content whose subject
    did not consent to human review, nor erased content (404, as for an unknown id)."""
    def ev(i: int, consent: list[str], subject: str) -> dict:
        return {"id": f"evc{i}", "interaction": {"prompt": f"private {i}"},
                "responses": [{"text": "r"}],
                "context": {"consent": consent, "subject_id": subject}}

    body = {"events": [ev(0, ["review", "train"], "amy"), ev(1, ["train"], "bob"),
                       ev(2, ["review"], "zed")]}
    assert api.client.post("/v1/events", json=body,
                           headers=api.headers("service")).status_code == 200
    assert api.client.post("/v1/datasets/forget-subject", json={"subject_id": "zed"},
                           headers=api.headers("lead")).status_code == 200
    adjudicator = api.headers("adjudicator")
    assert api.client.get("/v1/events/evc0", headers=adjudicator).json()[
        "interaction"]["prompt"] == "private 0"
    for hidden in ("evc1", "evc2", "evc9"):
        resp = api.client.get(f"/v1/events/{hidden}", headers=adjudicator)
        assert resp.status_code == 404 and "private" not in resp.text
    # Leads, admins and services keep reading them (erased ones show as erased).
    for role in ("lead", "admin", "service"):
        assert api.client.get("/v1/events/evc1", headers=api.headers(role)).json()[
            "interaction"]["prompt"] == "private 1"
        assert api.client.get("/v1/events/evc2", headers=api.headers(role)).json()[
            "erased"] is True
