"""Numbers and records on the lead's pages read as numbers and records, not as Python
values; drift alerts are acknowledged from the dashboard."""

from __future__ import annotations

import html
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.drift import DriftAlertRow
from hilt.web.render import env
from tests.gate.tiny_check import tiny_record
from tests.web.asgi import sign_in
from tests.web.conftest import add_person
from tests.web.seed import add_drift_alert, add_model

PY_FLOAT = re.compile(r"\d\.\d{7,}")  # a float's repr: 0.18333333333333332


def _section(page: str, heading: str) -> str:
    found = re.search(rf'<h2 id="{heading}-heading">.*?</section>', page, re.S)
    assert found, page[:500]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(0))).split())


def test_drift_alerts_read_as_numbers_and_groups(client: TestClient,
                                                 engine: Engine) -> None:
    add_drift_alert(engine, "da-tiny", p_value=2.2e-11)
    sign_in(client, add_person(engine, "lead-1", "lead"))
    text = _section(client.get("/ui/lead").text, "drift")
    assert "fisher_exact p < 0.0001 (α 0.01)" in text
    assert "0.0000" not in text
    assert " pool = default " in text and "{" not in text


def test_a_reviewer_without_gold_answers_shows_no_interval(client: TestClient,
                                                           engine: Engine) -> None:
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="new-1", role="reviewer")
    sign_in(client, add_person(engine, "lead-1", "lead"))
    text = _section(client.get("/ui/lead").text, "calibration")
    row = re.search(r"new-1 (.*?) onboarding", text)
    assert row, text
    assert "100.0%" not in row.group(1) and row.group(1).count("–") == 2, row.group(1)


def test_model_versions_read_as_a_summary(client: TestClient, engine: Engine) -> None:
    add_model(engine, accuracy=None)
    model_id = add_model(engine, accuracy=0.75)
    sign_in(client, add_person(engine, "lead-1", "lead"))
    text = _section(client.get("/ui/lead").text, "models")
    assert f"demo-rm {model_id} reward all-MiniLM-L6-v2 4693ccb07dabcdfb " in text
    assert "75.0% [41.0%, 93.0%], n = 8 held out" in text and "not evaluated" in text
    for raw in ("None", "artifact_path", "/srv/models", "accuracy_ci_low"):
        assert raw not in text


def test_model_versions_say_what_their_accuracy_rests_on(client: TestClient,
                                                          engine: Engine) -> None:
    add_model(engine, accuracy=0.75, held_out_in_train=True)
    sign_in(client, add_person(engine, "lead-1", "lead"))
    text = _section(client.get("/ui/lead").text, "models")
    assert "n = 8 held out, overlapping training: optimistic" in text


def test_drift_alerts_are_acknowledged_from_the_dashboard(client: TestClient,
                                                          engine: Engine) -> None:
    alert_id = add_drift_alert(engine)
    csrf = sign_in(client, add_person(engine, "lead-1", "lead"))
    page = client.get("/ui/lead").text
    action = f'action="/ui/lead/drift/{alert_id}/ack"'
    assert action in page
    ack = f"/ui/lead/drift/{alert_id}/ack"
    assert client.post(ack, data={"note": "x"}).status_code == 403  # no CSRF token
    done = client.post(ack, data={"csrf_token": csrf, "note": "rubric v2 planned"},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/ui/lead?msg=acknowledged"
    with transaction(engine) as s:
        row = s.get(DriftAlertRow, alert_id)
        assert row is not None
        assert (row.status, row.acknowledged_by, row.note) == (
            "acknowledged", "lead-1", "rubric v2 planned")
        entries = audit.entries(s, entity_id=alert_id, action="drift.acknowledge")
    assert [(e.actor, e.payload) for e in entries] == [
        ("lead-1", {"note": "rubric v2 planned", "again": False})]
    after = client.get("/ui/lead?msg=acknowledged").text
    assert "Drift alert acknowledged." in after and action not in after


def test_only_leads_acknowledge(client: TestClient, engine: Engine) -> None:
    alert_id = add_drift_alert(engine)
    csrf = sign_in(client, add_person(engine, "adj-1", "adjudicator"))
    refused = client.post(f"/ui/lead/drift/{alert_id}/ack", data={"csrf_token": csrf})
    assert refused.status_code == 403
    with transaction(engine) as s:
        assert s.execute(sa.select(DriftAlertRow.status)).scalar_one() == "open"


@pytest.fixture
def gate_page(tmp_path: Path) -> str:
    record: dict[str, Any] = tiny_record(tmp_path, [{"role": "release_owner"}])
    record["inputs"]["versions"]["dataset_versions"] = ["a" * 64, "b" * 64]
    record["decision"]["signoffs"]["present"] = [
        {"role": "release_owner", "by": "lead-7", "at": "2030-01-02T03:04:05.123456+00:00",
         "note": "ok"}]
    for criterion in record["decision"]["criteria"]:
        criterion["numbers"]["ratio"] = 0.18333333333333332
    row = SimpleNamespace(hash="ab" * 32)
    return html.unescape(env.get_template("gate.html").render(
        csrf="", principal=None, flash=None, prefix="/ui", version="test", error=None,
        title="Gate decision", row=row, record=record, decision=record["decision"],
        metrics=record["metrics"], versions=record["inputs"]["versions"]))


def test_gate_numbers_and_lists_are_readable(gate_page: str) -> None:
    criteria = gate_page.split("<h2>Criteria</h2>", 1)[1].split("<h2>", 1)[0]
    assert "ratio</b> 0.1833" in criteria
    assert not PY_FLOAT.search(criteria), criteria
    versions = gate_page.split("<h2>Versions</h2>", 1)[1]
    assert "['" not in versions and "[]" not in versions
    assert f"<li><code>{'a' * 64}</code></li><li><code>{'b' * 64}</code></li>" in versions
    signoffs = gate_page.split("<h2>Sign-offs</h2>", 1)[1].split("<h2>", 1)[0]
    assert "2030-01-02 03:04 UTC" in signoffs and "T03:04" not in signoffs
