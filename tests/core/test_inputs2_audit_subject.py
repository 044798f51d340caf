"""``hilt audit show`` prints a forgotten subject's entity as ``subject:HASH``, for the
entries written now (whose id is the hash prefix alone) and for those of older stores
(whose id carried ``subject:`` itself and stays as written: entries are hashed)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.canonical import sha256_hex
from hilt.cli import app
from hilt.data.forget import forget
from hilt.store import audit
from hilt.store.db import transaction


def _show(db_url: str, *args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(app, ["audit", "show", *args, "--db", db_url])
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))


def test_a_forget_entry_names_its_subject_once(db_url: str, engine: Engine) -> None:
    forget(engine, "alice", actor="dpo")
    digest = sha256_hex("alice")
    with transaction(engine) as session:
        entry, = audit.entries(session, action="subject.forget")
    assert (entry.entity_type, entry.entity_id) == ("subject", digest[:16])
    shown, = _show(db_url, "--action", "subject.forget")
    assert shown["entity"] == f"subject:{digest[:16]}"
    assert shown["payload"]["subject_sha256"] == digest


def test_an_older_entry_prints_the_same_and_both_are_found(db_url: str,
                                                          engine: Engine) -> None:
    digest = sha256_hex("bob")
    with transaction(engine) as session:  # as older stores wrote it
        audit.append(session, actor="dpo", action="subject.forget", entity_type="subject",
                     entity_id=f"subject:{digest[:16]}",
                     payload={"subject_sha256": digest, "reason": "old"})
    audit.seal_after_commit(engine, wait=True)
    forget(engine, "bob", actor="dpo", reason="new")
    shown = _show(db_url, "--action", "subject.forget")
    assert [e["entity"] for e in shown] == [f"subject:{digest[:16]}"] * 2
    assert [e["payload"]["reason"] for e in shown] == ["new", "old"]
    for entity in (digest[:16], f"subject:{digest[:16]}"):
        found = _show(db_url, "--entity", entity)
        assert [e["payload"]["reason"] for e in found] == ["new", "old"]
        assert len(_show(db_url, "--entity", entity, "--limit", "1")) == 1
    with transaction(engine) as session:
        assert audit.verify(session).ok  # the older entry was left as written
