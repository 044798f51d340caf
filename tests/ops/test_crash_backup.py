"""Two backups to one path, or a file that appears at the path while a backup is made:
each backup copies into a file of its own, and none overwrites what is there."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hilt.errors import InputError
from hilt.ops import backup as backup_module
from hilt.ops.backup import backup, verify_file

from .helpers import live_sqlite


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return live_sqlite(str(tmp_path / "live.db"))


def _partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name)


def test_a_backup_that_finishes_second_refuses_and_leaves_the_first_whole(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "bk.db"
    real_copy = backup_module._copy
    second: dict[str, Any] = {}

    def copy_while_another_backup_runs(source: sqlite3.Connection,
                                       target: sqlite3.Connection, **kw: Any) -> None:
        if not second:  # the first backup: a second one to the same path runs meanwhile
            second["result"] = "running"
            second["result"] = backup(sqlite_url, out)
        real_copy(source, target, **kw)

    monkeypatch.setattr(backup_module, "_copy", copy_while_another_backup_runs)
    with pytest.raises(InputError, match="already exists"):
        backup(sqlite_url, out)
    assert second["result"]["audit"]["ok"]
    checked = verify_file(out)
    assert checked["integrity"] == "ok" and checked["audit"]["ok"]
    con = sqlite3.connect(f"{out.resolve().as_uri()}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        con.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("bk.db")) \
        == ["bk.db", "bk.db.sha256"]  # one self-contained file: no -wal or -shm beside it
    assert _partials(tmp_path) == []


def test_a_file_created_at_the_path_during_the_backup_is_not_overwritten(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "bk.db"
    real_copy = backup_module._copy

    def copy_while_someone_writes_out(source: sqlite3.Connection,
                                      target: sqlite3.Connection, **kw: Any) -> None:
        out.write_text("someone else's file")
        real_copy(source, target, **kw)

    monkeypatch.setattr(backup_module, "_copy", copy_while_someone_writes_out)
    with pytest.raises(InputError, match="already exists"):
        backup(sqlite_url, out)
    assert out.read_text() == "someone else's file"
    assert _partials(tmp_path) == []


def test_a_failed_copy_leaves_no_partial_file(sqlite_url: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_copy(source: sqlite3.Connection, target: sqlite3.Connection,
                     **kw: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(backup_module, "_copy", failing_copy)
    with pytest.raises(sqlite3.OperationalError):
        backup(sqlite_url, tmp_path / "bk.db")
    assert not (tmp_path / "bk.db").exists() and _partials(tmp_path) == []
