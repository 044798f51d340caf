"""What backups and restores check beyond the audit chain and the event hashes: a
checksum file beside every backup, a read-only ``hilt backup verify``, damaged files
refused with one line, a copy verified before it is published, and restores that never
wait for ever (the backup file itself as target, a target another connection locks)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.ops.backup import backup, restore

from .climain import run_main
from .helpers import live_sqlite
from .procs import REPO, child_env


@pytest.fixture
def live(tmp_path: Path) -> Path:
    return Path(live_sqlite(str(tmp_path / "live.db")).removeprefix("sqlite:///"))


@pytest.fixture
def made(live: Path, tmp_path: Path) -> Path:
    out = tmp_path / "b.db"
    backup(f"sqlite:///{live}", out)
    return out


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _flip(path: Path, needle: bytes, offset: int = 0, value: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0, needle
    data[at + offset] = value if value is not None else data[at + offset] ^ 0x01
    path.write_bytes(bytes(data))


def _hilt(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hilt", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=child_env("sqlite://"))


def test_a_backup_has_a_checksum_file_in_sha256sum_format(made: Path) -> None:
    digest = hashlib.sha256(made.read_bytes()).hexdigest()
    assert (made.parent / "b.db.sha256").read_text() == f"{digest}  b.db\n"
    if shutil.which("sha256sum"):
        checked = subprocess.run(["sha256sum", "-c", "b.db.sha256"], cwd=made.parent,
                                 capture_output=True, text=True)
        assert checked.returncode == 0 and checked.stdout == "b.db: OK\n"


def test_damage_no_other_check_sees_is_refused_by_the_checksum(made: Path,
                                                                tmp_path: Path) -> None:
    # One byte of a reviewer's status ('calibrated'): neither SQLite's integrity check,
    # nor the audit chain, nor the event hashes cover it.
    _flip(made, b"calibrated", offset=9)
    target = tmp_path / "r.db"
    with pytest.raises(InputError) as refused:
        restore(made, _url(target))
    assert refused.value.file == str(made)
    assert refused.value.reason.startswith(
        f"the file does not match its checksum file {made}.sha256 (sha256 ")
    assert not target.exists()
    code, out = run_main("restore", str(made), "--db", _url(target))
    assert code == 2 and out.splitlines() == [f"error: {refused.value}"], out
    # without the checksum file only the other checks run, and they pass it
    (made.parent / "b.db.sha256").unlink()
    assert restore(made, _url(target), without_checksum=True)["audit"]["ok"]


def test_a_backup_without_its_checksum_file_needs_the_flag(made: Path,
                                                           tmp_path: Path) -> None:
    (made.parent / "b.db.sha256").unlink()
    target = tmp_path / "r.db"
    code, out = run_main("restore", str(made), "--db", _url(target))
    assert code == 2
    assert out.splitlines() == [
        f"error: {made}: its checksum file {made}.sha256 is missing, so damage the other "
        "checks cannot see would go unnoticed; restore it anyway with --without-checksum"]
    assert not target.exists()
    code, out = run_main("restore", str(made), "--without-checksum", "--db", _url(target))
    assert code == 0, out
    assert '"checksum": "missing"' in out


def test_restore_says_that_audit_sequence_numbers_are_handed_out_again(
        live: Path, made: Path) -> None:
    from hilt.store.db import make_engine

    from .helpers import workload

    engine = make_engine(_url(live))
    workload(engine, 2, start=50)  # entries after the backup, lost by the restore
    engine.dispose()
    con = sqlite3.connect(live)
    replaced = con.execute("SELECT seq FROM audit_head").fetchone()[0]
    con.close()
    code, out = run_main("restore", str(made), "--force", "--db", _url(live))
    assert code == 0, out
    con = sqlite3.connect(live)
    head = con.execute("SELECT seq FROM audit_head").fetchone()[0]
    con.close()
    assert head < replaced
    backed_up = head - 1  # the last entry is the restore's own
    assert (f"note: the restored audit log ends at seq {backed_up}, then this restore's own "
            f"entry (store.restored, seq {head}); the database it replaced had entries up "
            f"to seq {replaced}. New audit entries take the sequence numbers after "
            f"{backed_up} again") in out


def test_backup_verify_reads_the_file_without_changing_it(made: Path) -> None:
    before = (made.read_bytes(), made.stat().st_mtime_ns)
    code, out = run_main("backup", "verify", str(made))
    assert code == 0, out
    assert '"ok": true' in out and '"checksum": "ok"' in out and '"integrity": "ok"' in out
    assert (made.read_bytes(), made.stat().st_mtime_ns) == before
    assert sorted(p.name for p in made.parent.iterdir() if p.name.startswith("b.db")) == \
        ["b.db", "b.db.sha256"]  # no -wal, -shm or -journal made


def test_backup_verify_exits_1_on_a_checksum_mismatch(made: Path) -> None:
    _flip(made, b"calibrated", offset=9)
    code, out = run_main("backup", "verify", str(made))
    assert code == 1, out
    assert '"checksum": "mismatch"' in out and '"ok": false' in out
    assert f"{made}: checksum mismatch ({made}.sha256)" in out


def test_backup_verify_needs_a_file() -> None:
    code, out = run_main("backup", "verify")
    assert code == 2
    assert out.startswith("error: field 'FILE': name the backup to check")


def _damage_schema(path: Path) -> None:
    # A byte of a stored CREATE TABLE statement that is no UTF-8 any more.
    _flip(path, b"CREATE TABLE adjudications", offset=7, value=0xAB)


@pytest.mark.parametrize("command", ["restore", "backup verify", "audit verify"])
def test_a_damaged_schema_is_one_error_line(made: Path, tmp_path: Path,
                                            command: str) -> None:
    _damage_schema(made)
    target = tmp_path / "r.db"
    args = {"restore": ["restore", str(made), "--db", _url(target)],
            "backup verify": ["backup", "verify", str(made)],
            "audit verify": ["audit", "verify", "--db", _url(made)]}[command]
    code, out = run_main(*args)
    assert code == 2, out
    assert len(out.splitlines()) == 1 and out.startswith("error: "), out
    assert "malformed database schema (adjudications)" in out
    assert not target.exists()


def test_a_backup_whose_copy_fails_the_check_names_the_database_and_keeps_nothing(
        live: Path, tmp_path: Path) -> None:
    _damage_schema(live)
    out = tmp_path / "out.db"
    code, output = run_main("backup", str(out), "--db", _url(live))
    assert code == 2, output
    assert output.startswith(f"error: {live}: not a readable SQLite database "), output
    assert output.rstrip().endswith(f"nothing was written to {out}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.db"]


def test_an_empty_file_is_named_as_such(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    code, out = run_main("restore", str(empty), "--db", _url(tmp_path / "r.db"))
    assert code == 2
    assert out.splitlines() == [
        f"error: {empty}: not a hilt database: it holds no tables (an empty file?)"]


def test_a_folder_as_target_is_named(made: Path, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    code, out = run_main("restore", str(made), "--force", "--db", _url(folder))
    assert code == 2
    assert out.splitlines() == [
        f"error: field '--db': {folder} is a folder; name the database file to restore "
        "to (sqlite:///FOLDER/hilt.db)"]


def test_the_backup_file_itself_as_target_is_refused(made: Path) -> None:
    before = made.read_bytes()
    done = _hilt("restore", str(made), "--force", "--db", _url(made))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"error: field '--db': {made} is the backup file itself; restore it to another "
        "database"]
    assert made.read_bytes() == before


@pytest.fixture
def locked(live: Path) -> Iterator[sqlite3.Connection]:
    """``live`` with its write lock held (a writer in the middle of a transaction)."""
    holder = sqlite3.connect(live, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    yield holder
    holder.rollback()
    holder.close()


def test_a_locked_target_is_waited_for_a_bounded_time(made: Path, live: Path,
                                                      locked: sqlite3.Connection) -> None:
    before = live.read_bytes()
    started = time.monotonic()
    done = _hilt("restore", str(made), "--force", "--wait", "1", "--db", _url(live))
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - started < 30
    assert done.stderr.splitlines() == [
        f"error: field '--db': {live} stayed locked by another connection for 1 s (a "
        "'hilt serve', 'hilt worker' or other program writing it); stop what uses it, or "
        "wait longer with --wait"]
    assert live.read_bytes() == before


def test_a_restore_waiting_for_a_lock_stops_on_sigterm(made: Path, live: Path,
                                                       locked: sqlite3.Connection) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hilt", "restore", str(made), "--force", "--wait", "600",
         "--db", _url(live)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=REPO, env=child_env("sqlite://"))
    try:
        time.sleep(3)  # loaded and waiting for the lock
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGTERM, err
    assert err.splitlines() == ["error: terminated (SIGTERM)"]
