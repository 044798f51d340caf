"""A version's records are found by its id under the current data folder when the path
recorded at build time is gone (the data folder moved) or belongs to another store (a
copy): forget deletes them there, reading and exporting still work, and a records file
that is nowhere to be found is a failure of the forget, not a deletion done."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from data_factories import garden_event, make_label
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.data import versions
from hilt.data.build import build_version
from hilt.data.forget import forget
from hilt.data.spec import parse_spec
from hilt.events.ingest import ingest_events
from hilt.store.db import transaction

MARK = "sourdough"  # only in alice's texts
SPEC = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}


def _event(i: int, subject: str) -> dict[str, Any]:
    return garden_event(i, subject, marked="alice", mark=MARK)


@pytest.fixture
def built(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A version of alice's and bob's events, built into ``old/datasets`` (the data
    folder of ``HILT_HOME=old``)."""
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "old"))
    ingest_events(engine, [_event(0, "alice"), _event(1, "bob")], actor="test")
    labels = [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in range(2)]
    with transaction(engine) as session:
        result = build_version(session, parse_spec(SPEC), actor="tester",
                               label_source=lambda _s, **_k: labels)
    assert (tmp_path / "old" / "datasets" / result.version_id / "records.jsonl").exists()
    return result.version_id


def _move_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, copy: bool = False
               ) -> Path:
    new = tmp_path / "new"
    (shutil.copytree if copy else shutil.move)(str(tmp_path / "old"), str(new))
    monkeypatch.setenv("HILT_HOME", str(new))
    return new / "datasets"


def test_forget_deletes_the_records_where_the_data_folder_moved(
        engine: Engine, built: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    data = _move_home(tmp_path, monkeypatch)
    records = (data / built / "records.jsonl").resolve()
    assert MARK in records.read_text(encoding="utf-8")

    result = forget(engine, "alice", actor="dpo")

    assert result.ok, result.as_dict()
    assert result.versions_revoked == [built]
    assert result.files_deleted == [str(records)] and result.files_failed == []
    assert not records.exists()
    marker = json.loads((data / built / "REVOKED.json").read_text(encoding="utf-8"))
    assert "records_deleted_at" in marker
    # Run again: the records are known to be deleted, nothing fails.
    again = forget(engine, "alice", actor="dpo")
    assert again.ok and again.files_deleted == [] and again.files_failed == []


def test_forget_in_a_copy_of_a_store_deletes_the_copys_records_not_the_originals(
        engine: Engine, built: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    data = _move_home(tmp_path, monkeypatch, copy=True)

    result = forget(engine, "alice", actor="dpo")

    copied = (data / built / "records.jsonl").resolve()
    assert result.ok and result.files_deleted == [str(copied)]
    assert not (data / built / "records.jsonl").exists()
    assert (tmp_path / "old" / "datasets" / built / "records.jsonl").exists()


def test_forget_lists_records_it_cannot_find_anywhere_as_failed(
        engine: Engine, built: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        db_url: str) -> None:
    from hilt.cli import app

    shutil.move(str(tmp_path / "old"), str(tmp_path / "elsewhere"))
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "new"))  # not where it went

    ran = CliRunner().invoke(app, ["forget", "--subject", "alice", "--db", db_url])

    assert ran.exit_code == 1, ran.output
    shown = json.loads(ran.stdout)
    assert shown["versions_revoked"] == [built] and shown["files_deleted"] == []
    stored = tmp_path / "old" / "datasets" / built / "records.jsonl"
    assert [f["path"] for f in shown["files_failed"]] == [str(stored.resolve())]
    assert "not found" in shown["files_failed"][0]["error"]
    assert str(tmp_path / "new" / "datasets" / built) in shown["files_failed"][0]["error"]
    # Pointed at the folder that holds it, the same forget finishes the job.
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "elsewhere"))
    again = forget(engine, "alice", actor="dpo")
    moved = (tmp_path / "elsewhere" / "datasets" / built / "records.jsonl").resolve()
    assert again.ok and again.files_deleted == [str(moved)]
    assert not moved.exists()


def test_records_of_a_moved_data_folder_can_still_be_read(
        engine: Engine, built: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    _move_home(tmp_path, monkeypatch)
    with transaction(engine) as session:
        records = list(versions.read_records(versions.get_version(session, built)))
    assert sorted(r["lineage"]["event_id"] for r in records) == ["ev0", "ev1"]
