"""REVOKED.json markers are written after the revocation commits: a folder that cannot
take one is listed (exit 1) and the revocation and erasure stand; a rollback leaves no
marker; running the revoke again writes the markers still missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from data_factories import make_label
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.data import versions
from hilt.data.build import build_version
from hilt.data.export import export_version
from hilt.data.forget import forget
from hilt.data.spec import parse_spec
from hilt.events.ingest import ingest_events
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.core import EventRow

SPEC = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}


class Abort(Exception):
    pass


def _event(i: int, subject: str) -> dict[str, Any]:
    return {"id": f"ev{i}", "interaction": {"prompt": f"Question {i}: how do plants in "
                                            f"garden number {i} grow best?"},
            "responses": [{"text": f"Plants {i} need sun and water."},
                          {"text": f"No idea about {i}."}],
            "context": {"subject_id": subject, "consent": ["train", "review"]}}


@pytest.fixture
def exported(engine: Engine, tmp_path: Path) -> tuple[str, Path, Path]:
    """A version of bob's and amy's events, exported twice."""
    ingest_events(engine, [_event(0, "bob"), _event(1, "amy")], actor="test")
    labels = [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in range(2)]
    with transaction(engine) as session:
        vid = build_version(session, parse_spec(SPEC), actor="tester",
                            label_source=lambda _s, **_k: labels,
                            directory=tmp_path / "ds").version_id
    good, blocked = tmp_path / "team" / "a", tmp_path / "shared" / "b"
    for out in (good, blocked):
        with transaction(engine) as session:
            export_version(session, vid, out)
    return vid, good, blocked


def _block_marker(folder: Path) -> Path:
    """A folder where REVOKED.json cannot be written (a folder holds its name)."""
    (folder / "REVOKED.json").mkdir()
    return folder / "REVOKED.json"


def _revoked(engine: Engine, vid: str) -> tuple[bool, int]:
    with transaction(engine) as session:
        row = versions.get_version(session, vid)
        return (row.revoked_at is not None,
                len(audit.entries(session, entity_id=vid, action="dataset.revoke")))


def test_revoke_commits_when_a_marker_cannot_be_written_and_lists_it(
        db_url: str, engine: Engine, exported: tuple[str, Path, Path]) -> None:
    from hilt.cli import app

    vid, good, blocked = exported
    marker = _block_marker(blocked)
    runner = CliRunner()
    ran = runner.invoke(app, ["dataset", "revoke", vid, "--reason", "bad labels",
                              "--db", db_url])
    assert ran.exit_code == 1, ran.output
    shown = json.loads(ran.stdout)
    assert shown["revoked"] is True
    assert shown["markers_written"] == [str((good / "REVOKED.json").resolve())]
    assert [f["path"] for f in shown["markers_failed"]] == [str(marker.resolve())]
    assert "IsADirectoryError" in shown["markers_failed"][0]["error"]
    assert "run the same revoke again" in ran.stderr
    assert _revoked(engine, vid) == (True, 1)
    assert json.loads((good / "REVOKED.json").read_text())["reason"] == "bad labels"

    marker.rmdir()  # the cause is fixed: running it again writes what is missing
    again = runner.invoke(app, ["dataset", "revoke", vid, "--reason", "bad labels",
                                "--db", db_url])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["markers_written"] == [str(marker.resolve())]
    written = json.loads(marker.read_text())
    assert (written["version_id"], written["reason"]) == (vid, "bad labels")
    assert _revoked(engine, vid) == (True, 1)  # revoked once


def test_a_rolled_back_revocation_leaves_no_marker(
        engine: Engine, exported: tuple[str, Path, Path]) -> None:
    vid, good, blocked = exported
    with pytest.raises(Abort), transaction(engine) as session:
        versions.revoke(session, vid, reason="bad labels", actor="lead")
        raise Abort
    with transaction(engine) as session:
        try:
            with session.begin_nested():
                versions.revoke(session, vid, reason="bad labels", actor="lead")
                raise Abort
        except Abort:
            pass
    assert not (good / "REVOKED.json").exists() and not (blocked / "REVOKED.json").exists()
    assert _revoked(engine, vid) == (False, 0)


def test_forget_erases_when_a_marker_cannot_be_written_and_lists_it(
        engine: Engine, exported: tuple[str, Path, Path]) -> None:
    vid, good, blocked = exported
    marker = _block_marker(blocked)

    result = forget(engine, "bob", actor="dpo")

    assert result.events_erased == 1 and result.versions_revoked == [vid]
    assert not result.ok and result.files_failed == []
    assert [f["path"] for f in result.as_dict()["markers_failed"]] == [str(marker.resolve())]
    with transaction(engine) as session:
        row = session.get(EventRow, "ev0")
        assert row is not None and row.payload == {"erased": True}
        assert session.execute(sa.select(EventRow).where(EventRow.erased_at.is_not(None))
                               ).scalars().all() == [row]
    for folder in (good, blocked):  # the split files went from both
        assert not (folder / "train.jsonl").exists()
    assert json.loads((good / "REVOKED.json").read_text())["version_id"] == vid
