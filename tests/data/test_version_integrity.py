"""A version's records file is checked against the version id (its sha256) whenever it
is read: a file changed after the build (a flipped label) is refused by export and by
training, naming the file, and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_factories import make_label
from sqlalchemy.engine import Engine

from hilt.data import versions
from hilt.data.build import RECORDS_FILE, build_version
from hilt.data.export import export_version
from hilt.data.spec import parse_spec
from hilt.errors import InputError
from hilt.events.ingest import ingest_events
from hilt.store.db import transaction

SPEC = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}


@pytest.fixture
def version_id(engine: Engine, tmp_path: Path) -> str:
    ingest_events(engine, [{"id": f"ev{i}", "interaction": {
        "prompt": f"Question {i}: how do plants in garden number {i} grow best?"},
        "responses": [{"text": f"Plants {i} need sun."}, {"text": f"No idea {i}."}],
        "context": {"consent": ["train"]}} for i in range(3)], actor="test")
    labels = [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in range(3)]
    with transaction(engine) as session:
        return build_version(session, parse_spec(SPEC), actor="tester",
                             label_source=lambda _s, **_k: labels,
                             directory=tmp_path / "ds").version_id


def _flip_first_label(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    record = json.loads(lines[0])
    record["chosen"], record["rejected"] = record["rejected"], record["chosen"]
    lines[0] = json.dumps(record, ensure_ascii=False, separators=(",", ":"),
                          sort_keys=True) + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def test_an_unchanged_records_file_reads(engine: Engine, version_id: str) -> None:
    with transaction(engine) as session:
        assert len(list(versions.read_records(versions.get_version(session, version_id)))) == 3


def test_a_changed_records_file_is_refused_by_export(engine: Engine, version_id: str,
                                                     tmp_path: Path) -> None:
    records = tmp_path / "ds" / version_id / RECORDS_FILE
    _flip_first_label(records)
    out = tmp_path / "export"
    with transaction(engine) as session, pytest.raises(
            InputError, match="does not match dataset version") as err:
        export_version(session, version_id, out)
    assert err.value.file == str(records)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export")]


def test_a_changed_records_file_is_refused_for_training(engine: Engine, version_id: str,
                                                        tmp_path: Path) -> None:
    from hilt.train.from_dataset import load_dataset_input

    records = tmp_path / "ds" / version_id / RECORDS_FILE
    _flip_first_label(records)
    with transaction(engine) as session, pytest.raises(InputError) as err:
        load_dataset_input(session, version_id, expected_kind="preference")
    assert err.value.file == str(records)
