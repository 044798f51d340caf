"""Concurrent builds of the same dataset version (SQLite and PostgreSQL): one records the
version and the other reuses it, and no build ever removes the folder of a committed
version."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from data_factories import make_label
from sqlalchemy.engine import Engine

from hilt.data import build as build_module
from hilt.data.build import build_version
from hilt.data.spec import parse_spec
from hilt.events.ingest import ingest_events
from hilt.review.records import FinalLabelRecord
from hilt.store.db import make_engine, transaction
from hilt.store.tables.datasets import DatasetVersionRow

SPEC = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}


def _event(i: int) -> dict[str, Any]:
    return {"id": f"ev{i}", "interaction": {"prompt": f"Question {i}: how do plants in "
                                            f"garden number {i} grow best?"},
            "responses": [{"text": f"Plants {i} need sun and water."},
                          {"text": f"No idea about {i}."}],
            "context": {"subject_id": f"s{i}", "consent": ["train"]}}


@pytest.fixture
def labels(engine: Engine) -> list[FinalLabelRecord]:
    ingest_events(engine, [_event(i) for i in range(6)], actor="test")
    return [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in range(6)]


def _build(engine: Engine, labels: list[FinalLabelRecord], directory: Path,
           actor: str = "tester") -> build_module.BuildResult:
    with transaction(engine) as session:
        return build_version(session, parse_spec(SPEC), actor=actor,
                             label_source=lambda _s, **_k: labels, directory=directory)


def _versions(engine: Engine) -> list[tuple[str, str]]:
    with transaction(engine) as s:
        return [(r.id, r.created_by) for r in s.execute(sa.select(DatasetVersionRow))
                .scalars()]


def _assert_folder_is_the_versions(directory: Path, version_id: str, built_by: str) -> None:
    folder = directory / version_id
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "records.jsonl"]
    assert hashlib.sha256((folder / "records.jsonl").read_bytes()).hexdigest() == version_id
    assert json.loads((folder / "manifest.json").read_text())["built_by"] == built_by
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]  # nothing left


def test_two_concurrent_builds_record_one_version_and_reuse_it(
        db_url: str, labels: list[FinalLabelRecord], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Both builds have written their records before either looks the version up (on
    # SQLite the second cannot start before the first commits: the wait times out).
    arrived = threading.Barrier(2, timeout=3)
    write = build_module.write_records

    def write_then_wait(*args: Any, **kwargs: Any) -> Any:
        out = write(*args, **kwargs)
        with contextlib.suppress(threading.BrokenBarrierError):
            arrived.wait()
        return out

    monkeypatch.setattr(build_module, "write_records", write_then_wait)
    engine = make_engine(db_url)
    directory = tmp_path / "ds"
    results: dict[str, Any] = {}

    def run(actor: str) -> None:
        try:
            results[actor] = _build(engine, labels, directory, actor)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[actor] = exc

    threads = [threading.Thread(target=run, args=(a,)) for a in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    engine.dispose()
    assert not [r for r in results.values() if isinstance(r, Exception)], results
    assert sorted(r.created for r in results.values()) == [False, True]
    assert len({r.version_id for r in results.values()}) == 1
    creator = next(actor for actor, r in results.items() if r.created)
    (version_id, built_by), = _versions(make_engine(db_url))
    assert built_by == creator
    _assert_folder_is_the_versions(directory, version_id, creator)


def test_a_committed_versions_folder_is_never_replaced(
        engine: Engine, labels: list[FinalLabelRecord], tmp_path: Path) -> None:
    directory = tmp_path / "ds"
    first = _build(engine, labels, directory, "first")
    folder = directory / first.version_id
    marker = folder / "manifest.json"
    before = (marker.stat().st_ino, marker.read_bytes())
    again = _build(engine, labels, directory, "again")
    assert (again.version_id, again.created) == (first.version_id, False)
    assert (marker.stat().st_ino, marker.read_bytes()) == before
    _assert_folder_is_the_versions(directory, first.version_id, "first")
