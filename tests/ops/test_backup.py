"""SQLite backup and restore through the online backup API, audit chain verified."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.ops.backup import backup, restore
from hilt.store.db import make_engine

from .climain import run_main
from .helpers import live_sqlite, workload


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return live_sqlite(str(tmp_path / "live.db"))


def test_backup_restore_roundtrip_verifies_the_chain(sqlite_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "b.db"
    result = runner.invoke(app, ["backup", str(out), "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert '"ok": true' in result.output
    # Changes after the backup vanish on restore; the restored chain still verifies.
    engine = make_engine(sqlite_url)
    workload(engine, 2, start=50)
    engine.dispose()
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    info = restore(out, target)
    assert info["audit"]["ok"] and info["integrity"] == "ok"
    live = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    copy = sqlite3.connect(tmp_path / "restored.db")
    n_live = live.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    n_copy = copy.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    assert n_copy == info["audit"]["entries"] < n_live
    assert copy.execute("SELECT count(*) FROM review_tasks").fetchone()[0] == 5
    with pytest.raises(InputError, match="exists"):
        restore(out, target)
    assert runner.invoke(app, ["restore", str(out), "--db", target, "--force"]).exit_code == 0


def test_a_tampered_backup_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    out = tmp_path / "b.db"
    backup(sqlite_url, out)
    con = sqlite3.connect(out)
    con.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    con.commit()
    con.close()
    with pytest.raises(InputError, match="does not verify"):
        restore(out, f"sqlite:///{tmp_path / 'r.db'}")
    assert not (tmp_path / "r.db").exists()


def test_backup_refuses_postgres_and_existing_files(sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="pg_dump"):
        backup("postgresql://x@127.0.0.1/test", tmp_path / "x.db")
    (tmp_path / "exists.db").write_bytes(b"")
    with pytest.raises(InputError, match="already exists"):
        backup(sqlite_url, tmp_path / "exists.db")


def _tamper(path: Path, sql: str) -> None:
    con = sqlite3.connect(path)
    con.execute(sql)
    con.commit()
    con.close()


@pytest.mark.parametrize("sql", ["UPDATE audit_log SET payload = 'not json' WHERE seq = 3",
                                 "UPDATE audit_log SET at = 'garbage' WHERE seq = 3"])
def test_an_unreadable_entry_is_reported_not_a_crash(sqlite_url: str, tmp_path: Path,
                                                     sql: str) -> None:
    runner = CliRunner()
    live = Path(sqlite_url.removeprefix("sqlite:///"))
    out = tmp_path / "b.db"
    backup(sqlite_url, out)
    _tamper(live, sql)
    result = runner.invoke(app, ["audit", "verify", "--db", sqlite_url])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert '"first_bad_seq": 3' in result.output and "entry unreadable" in result.output
    _tamper(out, sql)
    with pytest.raises(InputError, match="does not verify: entry unreadable"):
        restore(out, f"sqlite:///{tmp_path / 'r.db'}")
    code, output = run_main("restore", str(out), "--db", f"sqlite:///{tmp_path / 'r.db'}")
    assert code == 2 and output.startswith("error:") and len(output.splitlines()) == 1, output
    assert not (tmp_path / "r.db").exists()


def test_backup_of_a_database_whose_chain_fails_exits_1_and_keeps_the_file(
        sqlite_url: str, tmp_path: Path) -> None:
    _tamper(Path(sqlite_url.removeprefix("sqlite:///")),
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    out = tmp_path / "b.db"
    result = CliRunner().invoke(app, ["backup", str(out), "--db", sqlite_url])
    assert result.exit_code == 1, result.output
    assert '"ok": false' in result.output and out.exists()
