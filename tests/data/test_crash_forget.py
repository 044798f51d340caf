"""Forget after its commit: every file that can be deleted is, each one that cannot is
listed (exit 1, and in the audit log, which is where the HTTP endpoint's background
deletion reports), and running the same forget again finishes the job, also after a
process killed between the commit and the deletions."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from data_factories import garden_event, make_label
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.canonical import sha256_hex
from hilt.data.build import build_version
from hilt.data.export import export_version
from hilt.data.spec import parse_spec
from hilt.events.ingest import ingest_events
from hilt.store import audit
from hilt.store.db import transaction

MARK = "quokkaberry"  # only in bob's texts
SPEC = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}

KILLED_FORGET = textwrap.dedent("""
    import os, signal, sys
    from hilt.data import forget
    def die(*args, **kwargs):  # the erasure has committed, nothing is deleted yet
        os.kill(os.getpid(), signal.SIGKILL)
    forget.delete_files = die
    sys.argv = ["hilt", *sys.argv[1:]]
    from hilt.cli import main
    main()
""")


def _event(i: int, subject: str) -> dict[str, Any]:
    return garden_event(i, subject, marked="bob", mark=MARK)


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> list[str]:
    """Two versions holding bob's text, each exported; their ids, sorted."""
    ingest_events(engine, [_event(0, "bob"), _event(1, "amy"), _event(2, "amy")],
                  actor="test")
    built = []
    for name, events in (("all", [0, 1, 2]), ("some", [0, 1])):
        labels = [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in events]
        with transaction(engine) as session:
            vid = build_version(session, parse_spec({**SPEC, "name": name}),
                                actor="tester", label_source=lambda _s, _l=labels, **_k: _l,
                                directory=tmp_path / "ds").version_id
        for fmt in ("jsonl", "hf"):
            with transaction(engine) as session:
                export_version(session, vid, tmp_path / "exports" / f"{name}-{fmt}", fmt=fmt)
        built.append(vid)
    return sorted(built)


def _holding(root: Path) -> list[str]:
    """The dataset and export files holding bob's text (the database aside)."""
    return sorted(str(p.relative_to(root)) for folder in ("ds", "exports")
                  for p in (root / folder).rglob("*")
                  if p.is_file() and MARK.encode() in p.read_bytes())


def _refuse_unlink(monkeypatch: pytest.MonkeyPatch, refused: Path) -> None:
    unlink = Path.unlink

    def guarded(self: Path, missing_ok: bool = False) -> None:
        if self == refused:
            raise PermissionError(13, "Permission denied", str(self))
        unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", guarded)


def _outcomes(engine: Engine) -> list[dict[str, Any]]:
    with transaction(engine) as session:
        return [e.payload for e in audit.entries(session, action="subject.forget_files")]


def test_forget_deletes_every_file_it_can_and_lists_the_one_it_cannot(
        db_url: str, engine: Engine, world: list[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.cli import app

    # The first file it deletes cannot be deleted.
    refused = (tmp_path / "ds" / world[0] / "records.jsonl").resolve()
    _refuse_unlink(monkeypatch, refused)
    runner = CliRunner()
    ran = runner.invoke(app, ["forget", "--subject", "bob", "--db", db_url])

    assert ran.exit_code == 1, ran.output
    shown = json.loads(ran.stdout)
    assert shown["events_erased"] == 1 and sorted(shown["versions_revoked"]) == world
    assert [f["path"] for f in shown["files_failed"]] == [str(refused)]
    assert shown["files_failed"][0]["error"].startswith("PermissionError")
    assert "run the same forget again" in ran.stderr
    # Everything else went: the other records file and every export's split files.
    assert _holding(tmp_path) == [str(refused.relative_to(tmp_path.resolve()))]
    assert len(shown["files_deleted"]) == 5 and shown["markers_failed"] == []
    assert not (refused.parent / "REVOKED.json").exists()  # it says nothing false
    (outcome,) = _outcomes(engine)
    assert outcome["files_failed"] == shown["files_failed"]
    assert outcome["subject_sha256"] == sha256_hex("bob")

    monkeypatch.undo()  # the cause is fixed: the same forget finishes the job
    again = runner.invoke(app, ["forget", "--subject", "bob", "--db", db_url])
    assert again.exit_code == 0, again.output
    shown = json.loads(again.stdout)
    assert (shown["events_erased"], shown["files_deleted"]) == (0, [str(refused)])
    assert _holding(tmp_path) == []
    assert "records_deleted_at" in json.loads((refused.parent / "REVOKED.json").read_text())


def test_forget_killed_after_its_commit_is_finished_by_running_it_again(
        db_url: str, engine: Engine, world: list[str], tmp_path: Path) -> None:
    from hilt.data.forget import forget

    killed = subprocess.run([sys.executable, "-c", KILLED_FORGET, "forget", "--subject",
                             "bob", "--db", db_url], capture_output=True, text=True,
                            timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with transaction(engine) as session:
        assert audit.entries(session, action="subject.forget")
    assert len(_holding(tmp_path)) == 6  # erased in the store, still in the files
    assert _outcomes(engine) == []  # no deletion was recorded

    result = forget(engine, "bob", actor="dpo")

    assert result.ok and result.events_erased == 0 and len(result.files_deleted) == 6
    assert _holding(tmp_path) == []
    assert [len(o["files_deleted"]) for o in _outcomes(engine)] == [6]


def test_a_failed_deletion_behind_the_http_endpoint_reaches_the_audit_log(
        engine: Engine, world: list[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.access import add_reviewer, create_token
    from hilt.api.app import create_app

    with transaction(engine) as session:
        add_reviewer(session, reviewer_id="lead-1", role="lead")
        token = create_token(session, role="lead", reviewer_id="lead-1")[1]
    refused = (tmp_path / "ds" / world[1] / "records.jsonl").resolve()
    _refuse_unlink(monkeypatch, refused)
    with TestClient(create_app(engine)) as client:
        reply = client.post("/v1/datasets/forget-subject", json={"subject_id": "bob"},
                            headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200, reply.text
    assert str(refused) in reply.json()["files_to_delete"]
    (outcome,) = _outcomes(engine)  # the deletion ran after the reply
    assert [f["path"] for f in outcome["files_failed"]] == [str(refused)]
    assert len(outcome["files_deleted"]) == 5
    assert _holding(tmp_path) == [str(refused.relative_to(tmp_path.resolve()))]
