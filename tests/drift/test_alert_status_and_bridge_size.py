"""Listing alerts by a status that exists, acknowledging twice, the bounds on a bridge's
size, and the advice when a small bridge cannot decide."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token
from hilt.api.app import create_app
from hilt.errors import InputError
from hilt.events.ingest import ingest_events
from hilt.quality.drift.bridge import (
    MAX_BRIDGE_OVERLAP,
    bridge_compatibility,
    create_bridge,
)
from hilt.quality.drift.runner import acknowledge, list_alerts
from hilt.quality.drift.transition import transition_matrix
from hilt.review.rubrics import publish_rubric
from hilt.review.tasks import create_task
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.drift import DriftAlertRow
from tests.drift.answering import answer_everything

from . import scenario
from .test_cli_api import cli

W0 = datetime(2030, 1, 7, tzinfo=UTC)


def stored_alert(engine: Engine) -> str:
    """One stored open alert (as the monitors would write it); its id."""
    with transaction(engine) as s:
        s.add(DriftAlertRow(
            id="da_test", monitor="label_shift", group_key="g", group={"pool": "default"},
            window_start=W0, window_end=W0, reference_start=W0, test="chi2", p_value=0.001,
            alpha=0.01, effect_name="js", effect=0.2, min_effect=0.05, n_current=100,
            n_reference=400, n_tests=1, message="labels shifted", detail={},
            status="open"))
    return "da_test"


def test_alerts_with_an_unknown_status_are_refused_naming_the_option(
        engine: Engine, db_url: str) -> None:
    stored_alert(engine)
    code, out = cli(db_url, "drift", "alerts", "--status", "bogus")
    assert code == 2 and "--status" in out and "'open', 'acknowledged'" in out
    code, out = cli(db_url, "drift", "alerts", "--status", "open")
    assert code == 0 and [a["id"] for a in json.loads(out)] == ["da_test"]
    with transaction(engine) as s, pytest.raises(InputError) as err:
        list_alerts(s, status="closed")
    assert err.value.field == "status"
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="lead", role="lead")
        token = create_token(s, role="lead", reviewer_id="lead")[1]
    with TestClient(create_app(engine)) as http:
        resp = http.get("/v1/drift/alerts", params={"status": "bogus"},
                        headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "status"


def test_a_second_acknowledgement_appends_its_note_and_is_audited(engine: Engine) -> None:
    alert_id = stored_alert(engine)
    with transaction(engine) as s:
        first = acknowledge(s, alert_id, actor="lead-a", note="rubric v2 planned")
    with transaction(engine) as s:
        second = acknowledge(s, alert_id, actor="lead-b", note="v2 published")
        entries = audit.entries(s, action="drift.acknowledge")
    assert second["acknowledged_by"] == "lead-a"  # the first acknowledgement stands
    assert second["note"].startswith("rubric v2 planned\n[lead-b, ")
    assert second["note"].endswith("] v2 published")
    assert first["note"] == "rubric v2 planned"
    assert sorted((e.actor, e.payload["note"], e.payload["again"]) for e in entries) == [
        ("lead-a", "rubric v2 planned", False), ("lead-b", "v2 published", True)]


def _labelled(engine: Engine, per_choice: int) -> dict[str, str]:
    """``per_choice`` labels of each verdict under simple@1, and simple@2 published."""
    scenario.base(engine)
    n = per_choice * len(scenario.CHOICES)
    truth = {f"ev{i:05d}": scenario.CHOICES[i % 3] for i in range(n)}
    ingest_events(engine, [scenario.event(i, W0) for i in range(n)], actor="service")
    with transaction(engine) as s:
        for eid in truth:
            create_task(s, event_id=eid, rubric="simple@1", actor="lead", overlap_k=1)
    assert answer_everything(engine, truth, "r0") == n
    with transaction(engine) as s:
        publish_rubric(s, scenario.rubric("clearer wording"), actor="lead")
    return truth


def test_a_small_bridge_advises_a_larger_per_stratum_when_more_labels_exist(
        engine: Engine) -> None:
    truth = _labelled(engine, 15)
    with transaction(engine) as s:
        made = create_bridge(s, "simple", 1, 2, actor="lead", per_stratum=10, overlap_k=1)
    assert made["strata"]["safe"] == {"available": 15, "sampled": 10}
    assert answer_everything(engine, truth, "r1") == 30  # every item keeps its label
    with transaction(engine) as s:
        compat = bridge_compatibility(s, "simple", 1, 2)
    assert compat.status == "unknown"
    assert "larger per_stratum (--per-stratum) could tell" in compat.reason
    assert "only more labels under the old version" not in compat.reason


def test_the_advice_names_more_labels_only_when_the_bridge_took_them_all() -> None:
    pairs = [(c, c) for c in ("safe", "harmful") for _ in range(10)]
    sampled = {"safe": 10, "harmful": 10}
    whole = transition_matrix(pairs, available=sampled, labelled=sampled)
    assert whole.status == "unknown"
    assert "only more labels under the old version could tell" in whole.reason
    larger = transition_matrix(pairs, available=sampled,
                               labelled={"safe": 30, "harmful": 10})
    assert "{'safe': 30}" in larger.reason and "--per-stratum" in larger.reason


@pytest.mark.parametrize(("args", "option"), [
    (["--overlap", "0"], "--overlap"),
    (["--overlap", str(MAX_BRIDGE_OVERLAP + 1)], "--overlap"),
    (["--per-stratum", "0"], "--per-stratum"),
])
def test_bridge_create_names_the_option_out_of_bounds(engine: Engine, db_url: str,
                                                      args: list[str], option: str) -> None:
    scenario.base(engine)
    code, out = cli(db_url, "drift", "bridge", "create", "simple", "--old", "1", "--new",
                    "2", *args)
    assert code == 2 and f"field '{option}'" in out


def test_the_api_and_the_cli_share_the_bridge_overlap_bound(engine: Engine) -> None:
    scenario.base(engine)
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="lead", role="lead")
        token = create_token(s, role="lead", reviewer_id="lead")[1]
    with TestClient(create_app(engine)) as http:
        resp = http.post("/v1/drift/bridges", headers={"Authorization": f"Bearer {token}"},
                         json={"rubric_id": "simple", "old_version": 1, "new_version": 2,
                               "overlap_k": MAX_BRIDGE_OVERLAP + 1})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == [
        "body", "overlap_k"]
    with transaction(engine) as s, pytest.raises(InputError) as err:
        create_bridge(s, "simple", 1, 2, actor="lead", overlap_k=MAX_BRIDGE_OVERLAP + 1)
    assert err.value.field == "overlap_k"
