"""POST /v1/datasets says when the records it built are those of a revoked version."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from hilt.data import versions
from hilt.events.ingest import ingest_events
from hilt.review.records import FinalLabelRecord
from hilt.store.db import transaction
from tests.api.conftest import Api

LABELS = [FinalLabelRecord(
    label_id=f"lb-ev{i}", event_id=f"ev{i}", task_id=f"t-ev{i}", rubric_id="helpful",
    rubric_version=1, question_id="pref", question_kind="preference",
    value={"chosen": 0, "rejected": 1}, provenance="majority", confidence=0.9,
    review_ids=(f"rv-ev{i}-a", f"rv-ev{i}-b"), adjudication_id=None,
    policy_version="policy-7", decided_at=datetime(2026, 1, 1, tzinfo=UTC))
    for i in range(3)]
SPEC = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}


def test_build_reports_a_revoked_version(api: Api, engine: Engine, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_HOME", str(tmp_path))
    monkeypatch.setattr("hilt.data.build.default_label_source",
                        lambda: (lambda _s, **_k: LABELS))
    ingest_events(engine, [{"id": f"ev{i}", "interaction": {
        "prompt": f"Question {i}: how do plants in garden number {i} grow best?"},
        "responses": [{"text": f"Plants {i} need sun."}, {"text": f"No idea {i}."}],
        "context": {"consent": ["train"]}} for i in range(3)], actor="test")
    first = api.client.post("/v1/datasets", json={"spec": SPEC}, headers=api.headers("lead"))
    assert first.status_code == 200, first.text
    assert (first.json()["created"], first.json()["revoked"]) == (True, False)
    vid = first.json()["version_id"]
    with transaction(engine) as session:
        versions.revoke(session, vid, reason="bad batch", actor="lead")
    again = api.client.post("/v1/datasets", json={"spec": SPEC}, headers=api.headers("lead"))
    assert again.status_code == 200, again.text
    body = again.json()
    assert (body["version_id"], body["created"], body["revoked"], body["revoked_reason"]) == \
        (vid, False, True, "bad batch")
