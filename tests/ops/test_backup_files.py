"""Backups of a database that is being written, the backup file's own mode, and backup
files that are not databases."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hilt.errors import InputError
from hilt.ops.backup import backup, restore

from .climain import run_main
from .helpers import live_sqlite


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return live_sqlite(str(tmp_path / "live.db"))


def _grow(path: Path, mib: int) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE filler (x BLOB)")
    con.executemany("INSERT INTO filler VALUES (?)",
                    ((os.urandom(4000),) for _ in range(mib * 256)))
    con.commit()
    con.close()


def test_backup_finishes_while_another_connection_keeps_committing(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer thread commits between any two steps of the copy (a busy server)."""
    live = Path(sqlite_url.removeprefix("sqlite:///"))
    _grow(live, 6)  # about 1,500 pages: more than one step of a copy made in pieces
    commit_now, committed, stop = threading.Event(), threading.Event(), threading.Event()
    steps: list[int] = []
    commits: list[int] = []

    def writer() -> None:
        con = sqlite3.connect(live, isolation_level=None, timeout=30)
        con.execute("CREATE TABLE IF NOT EXISTS ticks (t REAL)")
        while not stop.is_set():
            if commit_now.wait(0.05):
                commit_now.clear()
                con.execute("INSERT INTO ticks VALUES (?)", (time.time(),))
                commits.append(1)
                committed.set()
        con.close()

    class Source(sqlite3.Connection):
        def backup(self, target: sqlite3.Connection, *, pages: int = -1,
                   progress: Any = None, name: str = "main", sleep: float = 0.25) -> None:
            def step(status: int, remaining: int, total: int) -> None:
                steps.append(remaining)
                if len(steps) > 50:
                    raise RuntimeError("the copy keeps starting over")
                commit_now.set()  # the writer commits before the next step
                committed.wait(5)
                committed.clear()
                if progress is not None:
                    progress(status, remaining, total)

            super().backup(target, pages=pages, progress=step, name=name, sleep=sleep)

    connect = sqlite3.connect

    def connect_live_as_source(database: Any, *args: Any, **kwargs: Any) -> Any:
        if str(database).endswith("live.db") or "live.db?" in str(database):
            kwargs["factory"] = Source
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect_live_as_source)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = backup(sqlite_url, tmp_path / "b.db")
    finally:
        stop.set()
        thread.join(10)
    monkeypatch.undo()
    assert steps and steps[-1] == 0 and commits  # the writer did commit during the copy
    assert result["audit"]["ok"]
    copy = sqlite3.connect(tmp_path / "b.db")
    assert copy.execute("SELECT count(*) FROM filler").fetchone()[0] == 6 * 256
    copy.close()


def _journal_mode(path: Path) -> str:
    con = sqlite3.connect(path)
    try:
        return str(con.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        con.close()


def test_backup_file_stays_a_single_file_and_restore_leaves_it_untouched(
        sqlite_url: str, tmp_path: Path) -> None:
    out = tmp_path / "b.db"
    backup(sqlite_url, out)
    assert _journal_mode(out) == "delete"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("b.db")) == \
        ["b.db", "b.db.sha256"]
    before = out.read_bytes()
    os.chmod(out, 0o444)  # restore only reads the backup
    try:
        info = restore(out, f"sqlite:///{tmp_path / 'r.db'}")
    finally:
        os.chmod(out, 0o644)
    assert info["audit"]["ok"]
    assert out.read_bytes() == before
    assert _journal_mode(out) == "delete"


@pytest.mark.parametrize("content", ["garbage", "truncated", "empty-text"])
def test_restore_of_a_file_that_is_no_database_is_an_input_error(
        sqlite_url: str, tmp_path: Path, content: str) -> None:
    good = tmp_path / "good.db"
    backup(sqlite_url, good)
    bad = tmp_path / "bad.db"
    if content == "garbage":
        bad.write_bytes(os.urandom(100_000))
    elif content == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    else:
        bad.write_text("hello\n")
    target = tmp_path / "r.db"
    with pytest.raises(InputError) as err:
        restore(bad, f"sqlite:///{target}")
    assert err.value.file == str(bad)
    assert not target.exists()
    code, output = run_main("restore", str(bad), "--db", f"sqlite:///{target}")
    assert code == 2, output
    assert output.strip().splitlines() == [f"error: {err.value}"]
    assert output.startswith(f"error: {bad}: ")
