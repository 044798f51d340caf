"""A subject's erasure and a build or an export running at the same time (PostgreSQL;
SQLite serialises every writer): the erasure waits for them, then revokes the version
the build recorded and flags the export, and deletes the files holding the content."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from data_factories import garden_event, make_label
from sqlalchemy.engine import Engine

from hilt.data.build import build_version
from hilt.data.export import export_version
from hilt.data.forget import forget
from hilt.data.spec import parse_spec
from hilt.events.ingest import ingest_events
from hilt.store.db import make_engine, transaction
from hilt.store.tables.datasets import DatasetExportRow, DatasetVersionRow

MARK = "quokkaberry"  # only in the forgotten subject's texts
SPEC = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}
LABELS = [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in range(3)]


def _event(i: int, subject: str) -> dict[str, Any]:
    return garden_event(i, subject, marked="bob", mark=MARK, consent=("train",))


@pytest.fixture
def pg_engine_with_events(db_url: str) -> Engine:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite runs one writer at a time")
    engine = make_engine(db_url)
    ingest_events(engine, [_event(0, "bob"), _event(1, "amy"), _event(2, "amy")],
                  actor="test")
    return engine


def _start_forget(db_url: str) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        engine = make_engine(db_url)
        try:
            out["result"] = forget(engine, "bob", actor="lead").as_dict()
        finally:
            engine.dispose()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _build(session: Any, directory: Path) -> str:
    return build_version(session, parse_spec(SPEC), actor="tester",
                         label_source=lambda _s, **_k: LABELS,
                         directory=directory).version_id


def test_forget_during_a_build_revokes_the_version_it_records(
        db_url: str, pg_engine_with_events: Engine, tmp_path: Path) -> None:
    engine = pg_engine_with_events
    with transaction(engine) as session:
        version_id = _build(session, tmp_path / "ds")
        thread, out = _start_forget(db_url)
        thread.join(timeout=1.5)
        assert thread.is_alive()  # waits for the build to commit
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert out["result"]["versions_revoked"] == [version_id]
    with transaction(engine) as session:
        assert session.get(DatasetVersionRow, version_id).revoked_at is not None
    assert not (tmp_path / "ds" / version_id / "records.jsonl").exists()


def test_forget_during_an_export_flags_it_and_deletes_its_files(
        db_url: str, pg_engine_with_events: Engine, tmp_path: Path) -> None:
    engine = pg_engine_with_events
    with transaction(engine) as session:
        version_id = _build(session, tmp_path / "ds")
    out_dir = tmp_path / "export"
    with transaction(engine) as session:
        export_id = export_version(session, version_id, out_dir)["export_id"]
        thread, out = _start_forget(db_url)
        thread.join(timeout=1.5)
        assert thread.is_alive()  # waits for the export to commit
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert out["result"]["exports_flagged"] == [export_id]
    with transaction(engine) as session:
        assert session.get(DatasetExportRow, export_id).flagged_at is not None
    assert not (out_dir / "train.jsonl").exists()
    assert (out_dir / "REVOKED.json").exists()


def test_a_build_started_during_forget_sees_the_erased_store(
        db_url: str, pg_engine_with_events: Engine, tmp_path: Path) -> None:
    from hilt.data.forget import erase_subject

    engine = pg_engine_with_events
    built: dict[str, str] = {}

    def build_later() -> None:
        other = make_engine(db_url)
        try:
            with transaction(other) as session:
                built["id"] = _build(session, tmp_path / "ds")
        finally:
            other.dispose()

    with transaction(engine) as session:
        erase_subject(session, "bob", actor="lead")
        thread = threading.Thread(target=build_later)
        thread.start()
        thread.join(timeout=1.5)
        assert thread.is_alive()  # waits for the erasure to commit
    thread.join(timeout=30)
    records = (tmp_path / "ds" / built["id"] / "records.jsonl").read_text()
    assert MARK not in records
