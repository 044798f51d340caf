"""Revoking a revoked version changes nothing in the store, and says so: a reason given
the second time is not recorded, and the CLI does not let it pass unremarked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_factories import garden_event, make_label
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.data.build import build_version
from hilt.data.spec import parse_spec
from hilt.events.ingest import ingest_events
from hilt.store import audit
from hilt.store.db import transaction


@pytest.fixture
def version_id(sqlite_engine: Engine, tmp_path: Path) -> str:
    ingest_events(sqlite_engine, [garden_event(i, "amy", marked="", mark="") for i in range(2)],
                  actor="test")
    labels = [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in range(2)]
    with transaction(sqlite_engine) as session:
        return build_version(session, parse_spec({"name": "prefs", "kind": "preference"}),
                             actor="tester", label_source=lambda _s, **_k: labels,
                             directory=tmp_path / "ds").version_id


def test_a_second_revoke_notes_that_its_reason_is_not_recorded(
        sqlite_engine: Engine, version_id: str) -> None:
    runner = CliRunner()
    db = ["--db", str(sqlite_engine.url)]
    first = runner.invoke(app, ["dataset", "revoke", version_id, "--reason", "bad batch", *db])
    assert first.exit_code == 0, first.output
    assert "already revoked" not in first.stderr

    again = runner.invoke(app, ["dataset", "revoke", version_id, "--reason", "typo", *db])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["revoked_reason"] == "bad batch"
    assert "already revoked (bad batch)" in again.stderr
    assert "the reason given now ('typo') is not recorded" in again.stderr

    same = runner.invoke(app, ["dataset", "revoke", version_id, "--reason", "bad batch", *db])
    assert "already revoked (bad batch)" in same.stderr and "not recorded" not in same.stderr
    with transaction(sqlite_engine) as session:
        assert len(audit.entries(session, entity_id=version_id, action="dataset.revoke")) == 1
