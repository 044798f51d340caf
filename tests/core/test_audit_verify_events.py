"""`hilt audit verify --events` hashes every stored event again: an event whose payload
was edited in the database is named with the hash it no longer matches, an untouched
store verifies, and an event erased by a forget (which the audit log records) is not
taken for an edited one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.data.forget import forget
from hilt.store import event_hashes
from hilt.store.db import read_snapshot, transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import EventRow

N = 12


def _event(i: int) -> dict[str, Any]:
    # scores and metadata in an order PostgreSQL's JSONB does not keep (it sorts keys
    # by length): the check must not take the reordered text for an edit
    return {"id": f"ev{i:03d}", "interaction": {"prompt": f"question {i}"},
            "responses": [{"text": f"answer {i} ünïcode"}],
            "scores": {"uncertainty": 0.25, "guardrail": 0.1 * i, "reward": -1.5},
            "context": {"subject_id": "zed" if i < 3 else f"s{i}", "consent": ["review"],
                        "metadata": {"zz": [1, {"b": 2, "a": 1}], "a": "x"}}}


def _ingest(db_url: str, tmp_path: Path) -> None:
    file = tmp_path / "events.jsonl"
    file.write_text("".join(json.dumps(_event(i), ensure_ascii=False) + "\n"
                            for i in range(N)), encoding="utf-8")
    result = CliRunner().invoke(app, ["ingest", str(file), "--db", db_url])
    assert result.exit_code == 0, result.output


def _verify(db_url: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["audit", "verify", "--events", "--db", db_url])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def test_an_untouched_store_verifies_and_counts_its_events(db_url: str,
                                                           tmp_path: Path) -> None:
    _ingest(db_url, tmp_path)
    code, report = _verify(db_url)
    assert code == 0, report
    assert report["ok"] is True
    assert report["events"] == {"ok": True, "checked": N, "erased": 0, "bad": 0,
                                "unverified": 0, "first_bad": []}


def test_an_event_edited_with_sql_is_named(db_url: str, engine: Engine,
                                           tmp_path: Path) -> None:
    _ingest(db_url, tmp_path)
    with transaction(engine) as s:
        payload = dict(s.get(EventRow, "ev007").payload)
    payload["responses"] = [{"text": "answer 7 rewritten"}]
    with engine.begin() as conn:
        conn.execute(sa.update(EventRow).where(EventRow.id == "ev007")
                     .values(payload=payload))
    code, report = _verify(db_url)
    assert code == 1
    assert report["ok"] is True  # the audit chain itself is intact
    events = report["events"]
    assert (events["ok"], events["checked"], events["bad"]) == (False, N, 1)
    [bad] = events["first_bad"]
    assert (bad["id"], bad["hash"]) == ("ev007", "content_hash")
    assert bad["problem"] == "payload does not match its content_hash"


def test_a_batch_boundary_does_not_skip_or_repeat_events(db_url: str, engine: Engine,
                                                         tmp_path: Path) -> None:
    _ingest(db_url, tmp_path)
    with engine.begin() as conn:
        for event_id in ("ev004", "ev011"):
            conn.execute(sa.update(EventRow).where(EventRow.id == event_id)
                         .values(content_hash="0" * 64))
    with read_snapshot(engine) as session:
        result = event_hashes.verify_events(session, batch=4)
    assert (result.checked, result.bad) == (N, 2)
    assert [b["id"] for b in result.first_bad or []] == ["ev004", "ev011"]


def test_an_erased_event_is_not_reported(db_url: str, engine: Engine,
                                         tmp_path: Path) -> None:
    _ingest(db_url, tmp_path)
    forget(engine, "zed", actor="dpo")
    code, report = _verify(db_url)
    assert code == 0, report
    assert (report["events"]["checked"], report["events"]["erased"]) == (N, 3)


def test_an_erasure_the_log_does_not_record_is_reported(db_url: str, engine: Engine,
                                                        tmp_path: Path) -> None:
    _ingest(db_url, tmp_path)
    forget(engine, "zed", actor="dpo")
    with engine.begin() as conn:
        # marked erased by hand, to pass an edit off as an erasure
        conn.execute(sa.update(EventRow).where(EventRow.id == "ev005")
                     .values(payload={"erased": True}, erased_at=utcnow()))
        # erased by the forget, then given other content
        conn.execute(sa.update(EventRow).where(EventRow.id == "ev001")
                     .values(payload={"erased": True, "prompt": "put back"}))
    code, report = _verify(db_url)
    assert code == 1
    named = {b["id"]: b["problem"] for b in report["events"]["first_bad"]}
    assert named == {
        "ev001": 'erased, but its payload is not the erasure marker {"erased": true}',
        "ev005": "marked erased, but no subject.forget entry of the audit log names it"}
    assert report["events"]["erased"] == 2
