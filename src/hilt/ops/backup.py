"""Backups of the SQLite default through SQLite's online backup API.

``backup`` copies a live database page by page while other connections keep reading and
writing (``sqlite3.Connection.backup``; https://www.sqlite.org/backup.html): the copy is
a consistent snapshot of one moment. ``restore`` copies a backup over a database the same
way, after checking the backup is a hilt database whose audit chain verifies, and can
verify the chain again afterwards. PostgreSQL deployments use ``pg_dump``/``pg_restore``
(see docs/operations.md).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from hilt.errors import InputError


def sqlite_path(url: str) -> Path:
    parsed = sa.engine.make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database \
            or parsed.database == ":memory:":
        raise InputError("backup/restore work on a SQLite file database; use pg_dump "
                         "for PostgreSQL (docs/operations.md)", field="db")
    return Path(parsed.database)


def _copy(source: sqlite3.Connection, target: sqlite3.Connection) -> None:
    # 1024 pages per step, so writers are not locked out for the whole copy.
    source.backup(target, pages=1024)


def backup(url: str, out: str | Path) -> dict[str, Any]:
    """Write a consistent copy of the database at ``url`` to ``out`` (must not exist)."""
    src_path, out = sqlite_path(url), Path(out)
    if not src_path.exists():
        raise InputError(f"{src_path} does not exist", field="db")
    if out.exists():
        raise InputError(f"{out} already exists; choose a new file", field="out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    source = sqlite3.connect(src_path, timeout=60)
    target = sqlite3.connect(tmp)
    try:
        _copy(source, target)
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        target.close()
        source.close()
    tmp.rename(out)
    return {"backup": str(out), "bytes": out.stat().st_size, **verify_file(out)}


def verify_file(path: str | Path) -> dict[str, Any]:
    """Integrity check and audit-chain verification of a SQLite file."""
    from hilt.store import audit
    from hilt.store.db import make_engine, transaction

    path = Path(path)
    con = sqlite3.connect(path)
    try:
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        tables = {row[0] for row in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        con.close()
    if integrity != "ok" or "audit_log" not in tables:
        raise InputError(f"{path} is not an intact hilt database ({integrity})", file=str(path))
    engine = make_engine(f"sqlite:///{path}")
    try:
        with transaction(engine) as session:
            result = audit.verify(session)
    finally:
        engine.dispose()
    return {"integrity": integrity, "audit": result.as_dict()}


def restore(backup_file: str | Path, url: str, *, force: bool = False) -> dict[str, Any]:
    """Copy ``backup_file`` over the database at ``url`` (refuses a backup whose audit
    chain does not verify, and an existing database unless ``force``)."""
    backup_file, target_path = Path(backup_file), sqlite_path(url)
    if not backup_file.exists():
        raise InputError(f"{backup_file} does not exist", file=str(backup_file))
    checked = verify_file(backup_file)
    if not checked["audit"]["ok"]:
        raise InputError(f"the backup's audit chain does not verify: "
                         f"{checked['audit']['problem']}", file=str(backup_file))
    if target_path.exists() and not force:
        raise InputError(f"{target_path} exists; pass --force to overwrite it", field="db")
    target_path.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(backup_file)
    target = sqlite3.connect(target_path, timeout=60)
    try:
        _copy(source, target)
    finally:
        target.close()
        source.close()
    after = verify_file(target_path)
    return {"restored": str(target_path), "from": str(backup_file), **after}
