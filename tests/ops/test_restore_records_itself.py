"""A restore records itself: one ``store.restored`` audit entry, appended to the restored
chain, names the backup (file name, sha256, last audit entry) and who ran it; the chain
verifies with it, webhooks deliver it, and a refused restore writes nothing."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hilt.ops import webhooks
from hilt.ops.backup import backup
from hilt.store.db import make_engine, transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import AuditRow
from tests.conftest import older_sqlite

from .climain import run_main
from .helpers import live_sqlite, workload
from .receiver import Receiver

SECRET = "s" * 24


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _restored_entries(path: Path) -> list[tuple[Any, ...]]:
    return _rows(path, "SELECT seq, actor, entity_type, entity_id, payload FROM audit_log "
                       "WHERE action = 'store.restored' ORDER BY seq")


def _json(out: str) -> dict[str, Any]:
    return json.loads(out[out.index("{"):out.rindex("}") + 1])


@pytest.fixture
def live(tmp_path: Path) -> Path:
    return Path(live_sqlite(str(tmp_path / "live.db")).removeprefix("sqlite:///"))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(SECRET).start()
    yield rec
    rec.stop()


def test_a_restore_appends_one_entry_naming_the_backup_and_the_chain_verifies(
        live: Path, tmp_path: Path) -> None:
    made = tmp_path / "b.db"
    backup(_url(live), made)
    ((backup_seq, backup_hash),) = _rows(made, "SELECT seq, hash FROM audit_head")
    engine = make_engine(_url(live))
    workload(engine, 2, start=50)  # entries after the backup, which the restore drops
    engine.dispose()
    ((replaced,),) = _rows(live, "SELECT seq FROM audit_head")

    before = utcnow()
    code, out = run_main("restore", str(made), "--force", "--db", _url(live))
    assert code == 0, out
    result = _json(out)

    ((seq, actor, entity_type, entity_id, payload),) = _restored_entries(live)
    payload = json.loads(payload)
    assert seq == backup_seq + 1  # the first entry after the backup's
    assert (actor, entity_type, entity_id) == ("cli", "store", "b.db")
    assert payload["backup_file"] == "b.db"
    assert payload["backup_sha256"] == hashlib.sha256(made.read_bytes()).hexdigest()
    assert (payload["backup_audit_seq"], payload["backup_audit_hash"]) == \
        (backup_seq, backup_hash)
    assert payload["replaced_audit_head"] == replaced and payload["checksum"] == "ok"
    assert payload["user"] and payload["host"]
    engine = make_engine(_url(live))
    with transaction(engine) as s:
        assert before <= s.get_one(AuditRow, seq).at <= utcnow()  # when it was restored
    engine.dispose()
    # the entry is the restored chain's head, and what restore reports
    assert _rows(live, "SELECT seq FROM audit_head") == [(seq,)]
    assert result["restored_entry"]["seq"] == seq and result["audit"]["ok"]
    assert result["audit"]["head"]["seq"] == seq
    assert result["audit_seq_reused_after"] == backup_seq

    code, out = run_main("audit", "verify", "--expect", f"{backup_seq}:{backup_hash}",
                         "--db", _url(live))
    assert code == 0, out
    verified = _json(out)
    assert verified["ok"] and verified["head"]["seq"] == seq


def test_a_restore_refused_for_its_checksum_writes_nothing(live: Path,
                                                           tmp_path: Path) -> None:
    made = tmp_path / "b.db"
    backup(_url(live), made)
    (made.parent / "b.db.sha256").write_text("0" * 64 + "  b.db\n")
    audit_before = _rows(live, "SELECT seq, hash FROM audit_log ORDER BY seq")
    code, out = run_main("restore", str(made), "--force", "--db", _url(live))
    assert code == 2 and "does not match its checksum file" in out, out
    assert _rows(live, "SELECT seq, hash FROM audit_log ORDER BY seq") == audit_before
    assert _restored_entries(live) == []
    fresh = tmp_path / "fresh.db"
    code, out = run_main("restore", str(made), "--db", _url(fresh))
    assert code == 2 and not fresh.exists(), out


def test_a_restore_without_a_checksum_file_records_the_backups_own_sha256(
        live: Path, tmp_path: Path) -> None:
    made = tmp_path / "b.db"
    backup(_url(live), made)
    (made.parent / "b.db.sha256").unlink()
    target = tmp_path / "r.db"
    code, out = run_main("restore", str(made), "--without-checksum", "--db", _url(target))
    assert code == 0, out
    ((_, _, _, _, payload),) = _restored_entries(target)
    assert json.loads(payload)["checksum"] == "missing"
    assert json.loads(payload)["backup_sha256"] == \
        hashlib.sha256(made.read_bytes()).hexdigest()


def test_webhook_receivers_get_store_restored_through_the_normal_delivery(
        live: Path, tmp_path: Path, receiver: Receiver) -> None:
    engine = make_engine(_url(live))
    with transaction(engine) as s:
        webhooks.subscribe(s, url=receiver.url, secret=SECRET, actor="lead",
                           event_types=["store.restored"])
        webhooks.dispatch(s, utcnow())  # the subscription's cursor is up to date
    engine.dispose()
    made = tmp_path / "b.db"
    backup(_url(live), made)
    ((backup_seq,),) = _rows(made, "SELECT seq FROM audit_head")
    code, out = run_main("restore", str(made), "--force", "--db", _url(live))
    assert code == 0, out

    engine = make_engine(_url(live))
    try:
        with transaction(engine) as s:
            assert webhooks.dispatch(s, utcnow())["deliveries"] == 1
        assert webhooks.deliver_due(engine)["delivered"] == 1
    finally:
        engine.dispose()
    (delivered,) = receiver.received
    assert receiver.bad_signatures == 0
    assert delivered["type"] == "store.restored"
    assert delivered["entity"] == {"type": "store", "id": "b.db"}
    assert delivered["data"]["backup_audit_seq"] == backup_seq
    assert delivered["audit"]["seq"] == backup_seq + 1


def test_a_backup_of_an_older_schema_is_restored_and_recorded(tmp_path: Path) -> None:
    old = older_sqlite(tmp_path / "old.db")
    made = tmp_path / "b.db"
    backup(old, made)
    target = tmp_path / "r.db"
    code, out = run_main("restore", str(made), "--db", _url(target))
    assert code == 0, out
    ((seq, *_),) = _restored_entries(target)
    assert seq == 1  # an empty audit log: the restore's entry is its first
