"""Building records equal to a revoked version's returns that version (its id is its
records) and says it is revoked, with the reason: in the result, and from the CLI in its
output and a note on stderr (exit 0). The version stays revoked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_factories import make_label
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.data import versions
from hilt.data.build import build_version
from hilt.data.spec import parse_spec
from hilt.events.ingest import ingest_events
from hilt.store.db import transaction

SPEC = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}
LABELS = [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in range(3)]


@pytest.fixture
def events(engine: Engine) -> None:
    ingest_events(engine, [{"id": f"ev{i}", "interaction": {
        "prompt": f"Question {i}: how do plants in garden number {i} grow best?"},
        "responses": [{"text": f"Plants {i} need sun."}, {"text": f"No idea {i}."}],
        "context": {"consent": ["train"]}} for i in range(3)], actor="test")


def _build(engine: Engine, tmp_path: Path) -> object:
    with transaction(engine) as session:
        return build_version(session, parse_spec(SPEC), actor="tester",
                             label_source=lambda _s, **_k: LABELS,
                             directory=tmp_path / "ds")


def test_a_rebuild_of_a_revoked_version_says_it_is_revoked(engine: Engine, events: None,
                                                           tmp_path: Path) -> None:
    first = _build(engine, tmp_path)
    assert (first.created, first.revoked, first.revoked_reason) == (True, False, None)
    with transaction(engine) as session:
        versions.revoke(session, first.version_id, reason="bad batch", actor="lead")
    again = _build(engine, tmp_path)
    assert (again.version_id, again.created) == (first.version_id, False)
    assert (again.revoked, again.revoked_reason) == (True, "bad batch")
    with transaction(engine) as session:
        assert versions.get_version(session, first.version_id).revoked_at is not None


def test_cli_build_notes_a_revoked_version(db_url: str, engine: Engine, events: None,
                                           tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.cli import app

    monkeypatch.setattr("hilt.data.build.default_label_source",
                        lambda: (lambda _s, **_k: LABELS))
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: prefs\nkind: preference\nsplit:\n  validation_fraction: 0\n")
    args = ["dataset", "build", str(spec), "--db", db_url, "--data-dir", str(tmp_path / "ds")]
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "revoked" not in json.loads(first.stdout)
    vid = json.loads(first.stdout)["version_id"]
    with transaction(engine) as session:
        versions.revoke(session, vid, reason="bad batch", actor="lead")
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    out = json.loads(again.stdout)
    assert (out["version_id"], out["reused"], out["revoked"], out["revoked_reason"]) == \
        (vid, True, True, "bad batch")
    assert f"dataset version {vid} is revoked (bad batch)" in again.stderr
