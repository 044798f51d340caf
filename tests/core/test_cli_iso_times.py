"""Times the CLI prints are ISO 8601, as the HTTP API writes them, and ``hilt gate list``
shows a decision record's own time, as ``hilt gate show`` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.store.db import make_engine, transaction
from tests.conftest import migrated_sqlite
from tests.gate.tiny_check import stored_tiny_decision

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return migrated_sqlite(tmp_path / "h.db")


def hilt(db: str, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--db", db])
    assert result.exit_code == 0, (result.exception, result.output)
    return result.stdout


def test_labels_export_writes_decided_at_as_the_api_does(db: str, tmp_path: Path) -> None:
    from hilt.review.labels import iter_final_labels

    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"id": "ev0", "interaction": {"prompt": "question"},
                                  "responses": [{"text": "answer"}],
                                  "context": {"consent": ["review"]}}) + "\n")
    hilt(db, "ingest", str(events))
    hilt(db, "rubric", "publish", str(EXAMPLES / "rubrics" / "harm.yaml"))
    hilt(db, "task", "gold", "--event", "ev0", "--rubric", "harm", "--answers",
         json.dumps({"verdict": "safe", "refusal": "complies", "helpfulness": 4}))
    exported = [json.loads(line) for line in hilt(db, "labels", "export").splitlines()]
    with transaction(make_engine(db)) as session:
        # GET /v1/labels writes record.decided_at.isoformat()
        api = {r.label_id: r.decided_at.isoformat() for r in iter_final_labels(session)}
    assert exported and {r["label_id"]: r["decided_at"] for r in exported} == api
    assert all("T" in r["decided_at"] for r in exported)
    out = tmp_path / "labels.jsonl"
    hilt(db, "labels", "export", "--out", str(out))
    assert [json.loads(line) for line in out.read_text().splitlines()] == exported


def test_gate_list_shows_the_record_time_as_gate_show_does(db: str, tmp_path: Path) -> None:
    engine = make_engine(db)
    decision = stored_tiny_decision(engine, tmp_path, [])
    engine.dispose()
    shown = json.loads(hilt(db, "gate", "show", decision))
    (listed,) = json.loads(hilt(db, "gate", "list"))
    assert listed["hash"] == decision
    assert listed["created_at"] == shown["created_at"]
    assert "T" in listed["created_at"]


def test_suite_list_writes_times_in_iso_8601(db: str, tmp_path: Path) -> None:
    suite = tmp_path / "suite.jsonl"
    suite.write_text(json.dumps({"id": "a", "prompt": "p", "slice": "x",
                                 "expect": "comply"}) + "\n")
    hilt(db, "suite", "register", str(suite), "--name", "s", "--version", "1")
    (listed,) = json.loads(hilt(db, "suite", "list"))
    assert "T" in listed["created_at"] and " " not in listed["created_at"]
