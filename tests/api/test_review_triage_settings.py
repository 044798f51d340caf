"""``POST /v1/queue/triage`` takes the settings ``hilt queue triage --config`` takes, as
an optional JSON body, checked before anything runs: a body was once read by nobody, so
a lead's ``{"w_severity": 0}`` ran with the default weights and answered 200."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.review.triage import TriageConfig, priority
from hilt.store.db import transaction
from tests.review.helpers import event, ingest, publish_examples


@pytest.fixture
def lead(engine: Engine) -> Iterator[tuple[TestClient, dict[str, str]]]:
    publish_examples(engine)
    ingest(engine, [event(1)])
    with transaction(engine) as s:
        token = create_token(s, role="lead")[1]
    with TestClient(create_app(engine)) as http:
        yield http, {"Authorization": f"Bearer {token}"}


def test_triage_body_sets_the_weights(lead: tuple[TestClient, dict[str, str]]) -> None:
    http, headers = lead
    task = http.post("/v1/tasks", headers=headers, json={
        "event_id": "ev00001", "rubric": "harm", "severity": "sev2"}).json()["task_id"]

    def run(body: Any) -> float:
        kw = {} if body is None else {"json": body}
        ran = http.post("/v1/queue/triage", headers=headers, **kw)
        assert ran.status_code == 200, ran.text
        assert ran.json()["priorities_refreshed"] == 1
        return float(http.get(f"/v1/tasks/{task}", headers=headers).json()["priority"])

    # sev2 and 24 hours left: the severity term (4 · 1/3) dominates the default priority
    assert run(None) == pytest.approx(priority(2, 24.0, 0.0, 1), abs=1e-3)
    assert run({}) == pytest.approx(priority(2, 24.0, 0.0, 1), abs=1e-3)
    settings = {"w_severity": 0, "w_sla": 1, "sla_tau_hours": 48}
    assert run(settings) == pytest.approx(
        priority(2, 24.0, 0.0, 1, TriageConfig(**settings)), abs=1e-3)
    assert run(settings) < 1.0


@pytest.mark.parametrize(("body", "field"), [
    ({"w_sla": -1}, "w_sla"),
    ({"sla_tau_hours": 0}, "sla_tau_hours"),
    ({"dup_threshold": 0.99}, "dup_threshold"),
    ({"num_perm": 100_000_000}, "num_perm"),
])
def test_bad_triage_settings_are_refused_naming_the_setting(
        lead: tuple[TestClient, dict[str, str]], body: dict[str, Any], field: str) -> None:
    http, headers = lead
    refused = http.post("/v1/queue/triage", headers=headers, json=body)
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == field


@pytest.mark.parametrize("body", [{"w_sla": True}, {"w_sla": "3"}, {"num_perm": 64.0},
                                  {"w_slaa": 3}])
def test_mistyped_or_unknown_triage_settings_are_refused(
        lead: tuple[TestClient, dict[str, str]], body: dict[str, Any]) -> None:
    http, headers = lead
    refused = http.post("/v1/queue/triage", headers=headers, json=body)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", next(iter(body))]
