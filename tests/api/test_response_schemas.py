"""Typed response bodies: every JSON operation declares its body in the OpenAPI schema,
the document stays valid, and the replies match what is declared.

Every reply any test receives is checked against its declared model
(:mod:`tests.api.conformance`, applied to every test). The tests here make the calls no
other test makes, and the cases a body changes shape in (a field present only
sometimes, the compatibility of versions that are not consecutive), so that each
declared model meets a real reply.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from hilt.api.app import PUBLIC_PATHS, create_app
from hilt.api.paging import NEXT_HEADER
from hilt.ops import webhooks
from hilt.review.records import FinalLabelRecord
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.train.registry import register_model_version
from tests.api.conformance import check_reply
from tests.api.conftest import Api, calibrated
from tests.drift import scenario

HARM = Path(__file__).resolve().parents[2] / "examples" / "rubrics" / "harm.yaml"
RULES = Path(__file__).resolve().parents[2] / "examples" / "rules" / "safety.yaml"
ANSWERS = {"verdict": "safe", "refusal": "complies", "helpfulness": 3}
# Not JSON: Prometheus text and a stream of JSON lines.
NOT_JSON = {("get", "/metrics"), ("get", "/v1/exports/reviews.jsonl")}
PAGED_ROUTES = {"/v1/jobs", "/v1/webhooks/deliveries", "/v1/drift/alerts",
                "/v1/adjudications", "/v1/reviews/mine"}


# --- the OpenAPI document ---------------------------------------------------------------


def _document(api: Api) -> dict[str, Any]:
    served = api.client.get("/openapi.json", headers=api.headers("lead"))
    assert served.status_code == 200
    # strict JSON: no NaN or Infinity literal anywhere
    document: dict[str, Any] = json.loads(served.text, parse_constant=_refuse_constant)
    return document


def _refuse_constant(name: str) -> None:
    raise AssertionError(f"the OpenAPI document holds {name}, which JSON does not have")


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def _model_name(schema: dict[str, Any]) -> str | None:
    """The component a body schema names: ``{"$ref"}`` or a list of one; else None."""
    if set(schema) == {"$ref"}:
        return str(schema["$ref"]).removeprefix("#/components/schemas/")
    if schema.get("type") == "array" and set(schema) == {"type", "items"}:
        return _model_name(schema["items"])
    return None


def test_the_openapi_document_builds_and_every_reference_resolves(api: Api) -> None:
    document = _document(api)
    assert document["openapi"].startswith("3.")
    components = document["components"]["schemas"]
    missing = sorted({ref for ref in _refs(document)
                      if ref.removeprefix("#/components/schemas/") not in components})
    assert not missing, missing
    # served as it is built, the same document every time
    assert _document(api) == document


def test_every_json_operation_declares_a_typed_success_body(api: Api) -> None:
    document = _document(api)
    components = document["components"]["schemas"]
    untyped, typed, skipped = [], 0, set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if (method, path) in NOT_JSON:
                skipped.add((method, path))
                continue
            bodies = [(code, response.get("content", {}).get("application/json"))
                      for code, response in operation["responses"].items()
                      if code.startswith("2")]
            names = [_model_name(body["schema"]) if body else None for _, body in bodies]
            if not names or None in names or not all(n in components for n in names):
                untyped.append(f"{method.upper()} {path}: {bodies}")
            else:
                typed += 1
    assert not untyped, "operations without a typed success body:\n" + "\n".join(untyped)
    assert skipped == NOT_JSON and typed > 0


def test_the_paged_lists_keep_their_paging_headers_beside_their_body(api: Api) -> None:
    paths = _document(api)["paths"]
    for path in PAGED_ROUTES:
        ok = paths[path]["get"]["responses"]["200"]
        assert set(ok["headers"]) == {NEXT_HEADER, "Link"}, path
        assert _model_name(ok["content"]["application/json"]["schema"]), path


def test_a_documented_model_names_every_field(api: Api) -> None:
    components = _document(api)["components"]["schemas"]
    event = components["StoredEvent"]
    assert event["required"] == ["id", "ingested_at", "erased"]  # the rest goes on erasure
    assert "default" not in event["properties"]["interaction"]  # absent is not null
    assert components["NextTask"]["required"] == ["task"]
    assert components["ValidationProblem"]["required"] == ["loc", "msg", "type", "input"]


# --- the conformance check itself ------------------------------------------------------


def _reply(status: int, method: str, path: str, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body,
                          request=httpx.Request(method, f"http://testserver{path}"))


@pytest.fixture
def app(sqlite_engine: Engine) -> FastAPI:
    return create_app(sqlite_engine)


def test_the_check_refuses_a_field_the_model_does_not_name(app: FastAPI) -> None:
    path = "/v1/queue/tasks/t1/heartbeat"
    check_reply(app, _reply(200, "POST", path, {"lease_expires_at": "2030-01-01T00:00:00Z"}))
    with pytest.raises(AssertionError, match="extra_forbidden"):
        check_reply(app, _reply(200, "POST", path, {"lease_expires_at": "2030-01-01T00:00:00Z",
                                                    "reviews_so_far": 2}))


def test_the_check_allows_an_occasional_field_to_be_absent_but_never_null(
        app: FastAPI) -> None:
    check_reply(app, _reply(200, "POST", "/v1/queue/next", {"task": None}))
    with pytest.raises(AssertionError, match="resumed"):
        check_reply(app, _reply(200, "POST", "/v1/queue/next",
                                {"task": None, "resumed": None}))


def test_the_check_refuses_a_value_of_another_type(app: FastAPI) -> None:
    with pytest.raises(AssertionError, match="labels_changed"):
        check_reply(app, _reply(200, "POST", "/v1/quality/refresh", {
            "rubrics": [{"rubric_id": "harm", "models": [], "labels_changed": "3",
                         "confidences_updated": 0, "tasks_resolved": 0,
                         "tasks_reopened": 0}], "status_changes": []}))


def test_the_check_holds_errors_to_the_error_shape(app: FastAPI) -> None:
    check_reply(app, _reply(404, "GET", "/v1/jobs/j1", {"detail": "no such job"}))
    check_reply(app, _reply(404, "GET", "/v1/no-such-route", {"detail": "Not Found"}))
    check_reply(app, _reply(422, "GET", "/v1/jobs", {"detail": [
        {"type": "int_parsing", "loc": ["query", "limit"], "msg": "not a number",
         "input": "x"}]}))
    check_reply(app, _reply(422, "POST", "/v1/rubrics", {"detail": "bad", "error": {
        "file": "request", "line": None, "field": "questions", "reason": "bad"}}))
    with pytest.raises(AssertionError, match="Error"):
        check_reply(app, _reply(409, "POST", "/v1/jobs/j1/cancel",
                                {"detail": "running", "job": "j1"}))
    with pytest.raises(AssertionError):
        check_reply(app, _reply(422, "GET", "/v1/jobs", {"problems": ["limit"]}))


def test_the_check_refuses_json_on_a_status_that_declares_nothing() -> None:
    bare = FastAPI()
    bare.state.public_paths = PUBLIC_PATHS

    @bare.get("/v1/thing")
    def thing() -> dict[str, int]:
        return {"n": 1}

    with pytest.raises(AssertionError, match="declares no model"):
        check_reply(bare, _reply(200, "GET", "/v1/thing", {"n": 1}))


# --- replies of the calls no other test makes ---------------------------------------------


def _call(api: Api, role: str, method: str, path: str, **kw: Any) -> Any:
    reply = api.client.request(method, path, headers=api.headers(role), **kw)
    assert reply.status_code in (200, 201, 202), (method, path, reply.text)
    return reply.json()


def _rubric(version: int) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(HARM.read_text())
    if version > 1:
        spec["guidelines"] += f"Revision {version}: quote the clause you rely on.\n"
        spec["changelog"] = f"revision {version}"
    return spec


def _event(i: int) -> dict[str, Any]:
    return {"id": f"ev{i}", "interaction": {"prompt": f"How do I grow tomato {i}?"},
            "responses": [{"text": f"Plenty of sun, {i}."}], "scores": {"guardrail": 0.1},
            "context": {"consent": ["review", "train"], "policy_version": "pol-1"}}


def test_rubric_task_and_queue_replies(api: Api, engine: Engine) -> None:
    with transaction(engine) as s:
        secret = calibrated(s, [("rita", "reviewer")])["rita"]
    api.tokens["rita"] = secret
    assert _call(api, "lead", "POST", "/v1/rubrics", json=_rubric(1))["version"] == 1
    _call(api, "lead", "POST", "/v1/escalation/rule-sets",
          json={"spec": yaml.safe_load(RULES.read_text())})
    _call(api, "service", "POST", "/v1/events", json={"events": [_event(1), _event(2)]})
    gold = _call(api, "lead", "POST", "/v1/tasks/gold",
                 json={"event_id": "ev1", "rubric": "harm@1", "answers": ANSWERS})
    assert gold["task_id"]
    second = _call(api, "lead", "POST", "/v1/rubrics", json=_rubric(2))
    assert second["gold"]["pinned_to_earlier_versions"] == {"1": 1}
    listed = _call(api, "reviewer", "GET", "/v1/rubrics")
    assert [r["version"] for r in listed] == [1, 2]
    diff = _call(api, "lead", "GET", "/v1/rubrics/diff", params={"a": "harm@1", "b": "harm@2"})
    assert (diff["from"], diff["to"], diff["identical"]) == ("harm@1", "harm@2", False)
    assert _call(api, "reviewer", "GET", "/v1/rubrics/harm/2")["changelog"] == "revision 2"

    task_id = _call(api, "lead", "POST", "/v1/tasks",
                    json={"event_id": "ev2", "rubric": "harm@2", "overlap": 1})["task_id"]
    record = _call(api, "lead", "GET", f"/v1/tasks/{task_id}")
    assert record["escalation"]["matched"] == [{"rule": "manual", "by": "lead-1"}]
    stats = _call(api, "lead", "GET", "/v1/queue/stats")
    assert sum(stats["default"].values()) >= 1
    assert set(_call(api, "lead", "POST", "/v1/queue/triage")) >= {"leases_expired"}
    task = _call(api, "rita", "POST", "/v1/queue/next")["task"]
    assert task is not None
    assert _call(api, "rita", "POST", f"/v1/queue/tasks/{task['task_id']}/release") == \
        {"status": "released"}


def test_a_backtest_of_an_unpublished_rule_set_says_which_version_it_drew(
        api: Api) -> None:
    _call(api, "lead", "POST", "/v1/rubrics", json=_rubric(1))
    rules = yaml.safe_load(RULES.read_text())
    report = _call(api, "lead", "POST", "/v1/escalation/backtest", json={"spec": rules})
    assert report["version"] == 0 and "not published" in report["version_note"]


def test_compatibility_across_versions_lists_each_consecutive_pair(api: Api) -> None:
    for version in (1, 2, 3):
        _call(api, "lead", "POST", "/v1/rubrics", json=_rubric(version))
    decided = _call(api, "lead", "POST", "/v1/drift/decisions", json={
        "rubric_id": "harm", "old_version": 1, "new_version": 2, "kind": "accept",
        "reason": "the revision only adds a sentence"})
    assert decided["kind"] == "accept" and decided["question_id"] is None
    direct = _call(api, "adjudicator", "GET", "/v1/drift/compatibility/harm/1/2")
    assert direct["mixable"] and direct["decisions"][0]["kind"] == "accept"
    chain = _call(api, "adjudicator", "GET", "/v1/drift/compatibility/harm/1/3")
    assert set(chain["questions"]) == {"@1->@2", "@2->@3"}
    assert chain["questions"]["@1->@2"]["mixable"] is True


LABELS = [FinalLabelRecord(
    label_id=f"lb-ev{i}", event_id=f"ev{i}", task_id=f"t-ev{i}", rubric_id="harm",
    rubric_version=1, question_id="pref", question_kind="preference",
    value={"chosen": 0, "rejected": 1}, provenance="majority", confidence=0.9,
    review_ids=(f"rv-ev{i}-a", f"rv-ev{i}-b"), adjudication_id=None,
    policy_version="pol-1", decided_at=datetime(2026, 1, 1, tzinfo=UTC)) for i in range(3)]


def test_dataset_and_model_lineage_replies(api: Api, engine: Engine, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_HOME", str(tmp_path))
    monkeypatch.setattr("hilt.data.build.default_label_source",
                        lambda: (lambda _s, **_k: LABELS))
    events = [{**_event(i), "responses": [{"text": f"Sun {i}."}, {"text": f"No idea {i}."}]}
              for i in range(3)]
    _call(api, "service", "POST", "/v1/events", json={"events": events})
    built = _call(api, "lead", "POST", "/v1/datasets", json={"spec": {
        "name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}})
    vid = built["version_id"]
    facts = _call(api, "lead", "GET", f"/v1/datasets/{vid}/facts")
    assert (facts["records"], facts["consented"]) == (3, True)
    assert _call(api, "lead", "GET", f"/v1/datasets/{vid}")["manifest"]
    with transaction(engine) as s:
        model = register_model_version(s, manifest={
            "kind": "reward", "base_model": "tiny", "data": {"hash": vid}, "config": {},
            "seed": 0, "code_version": "test", "metrics": {
                "accuracy": 0.75, "accuracy_ci": {"low": 0.6, "high": 0.86, "n": 40}}},
            artifact_path=str(tmp_path / "rm"), actor="lead").id
    lineage = _call(api, "service", "GET", f"/v1/drift/lineage/{model}")
    assert lineage["model"]["accuracy_n"] == 40
    assert lineage["datasets"][0]["counts"]["events"] == 3


def test_webhook_replies(api: Api, engine: Engine) -> None:
    kinds = _call(api, "service", "GET", "/v1/webhooks/event-types")
    assert "events.ingested" in kinds
    _call(api, "lead", "POST", "/v1/webhooks", json={
        "url": "http://127.0.0.1:9/hook", "event_types": ["events.ingested"]})
    _call(api, "service", "POST", "/v1/events", json={"events": [_event(1)]})
    with transaction(engine) as s:
        assert webhooks.dispatch(s, utcnow())["deliveries"] == 1
    (delivery,) = _call(api, "lead", "GET", "/v1/webhooks/deliveries")
    again = _call(api, "lead", "POST", f"/v1/webhooks/deliveries/{delivery['id']}/replay")
    assert (again["id"], again["status"]) == (delivery["id"], "pending")


def test_drift_alerts_with_their_intervals(api: Api, engine: Engine) -> None:
    scenario.base(engine)
    scenario.history(engine)
    now = (scenario.T0 + timedelta(days=scenario.DAYS, hours=1)).isoformat()
    run = _call(api, "lead", "POST", "/v1/drift/run",
                json={"now": now, "config": {"lookback_windows": scenario.DAYS}})
    assert run["alerts"], "the scenario's policy change raises alerts"
    stored = _call(api, "lead", "GET", "/v1/drift/alerts")
    assert any(a["intervals"] for a in stored)
    acked = _call(api, "lead", "POST", f"/v1/drift/alerts/{stored[0]['id']}/ack",
                  json={"note": "seen"})
    assert acked["status"] == "acknowledged"
