"""Backups of the SQLite default through SQLite's online backup API.

``backup`` copies a live database while other connections keep reading and writing
(``sqlite3.Connection.backup``; https://www.sqlite.org/backup.html): the copy is a
consistent snapshot of one moment. It is made in one step, under one read transaction:
a copy made in pieces starts over whenever another connection commits between two
pieces, so on a busy server it would never finish; in WAL mode the one read transaction
does not block writers. The backup file is left in rollback-journal mode (one
self-contained file) and is only ever opened read-only afterwards.

``restore`` copies a backup over a database the same way, after checking the backup is
an intact hilt database of a schema revision this hilt knows, whose audit chain
verifies and whose events still match their stored content hashes, and verifies the
copy again afterwards. ``PRAGMA integrity_check`` checks SQLite's structure, not what
the rows say, and the audit chain does not cover event payloads: a flipped byte inside
an event's text passes both, so each event's payload is hashed again. PostgreSQL
deployments use ``pg_dump``/``pg_restore`` (see docs/operations.md).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from hilt.canonical import sha256_hex
from hilt.errors import InputError
from hilt.staging import PrivateFile
from hilt.umask import new_file_mode

# The files SQLite keeps beside a database while it writes it: removed with a
# temporary copy that a killed backup left.
_SQLITE_COMPANIONS = ("-journal", "-wal", "-shm")


def sqlite_path(url: str) -> Path:
    parsed = sa.engine.make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database \
            or parsed.database == ":memory:":
        raise InputError("backup/restore work on a SQLite file database; use pg_dump "
                         "for PostgreSQL (docs/operations.md)", field="--db")
    return Path(parsed.database)


def _copy(source: sqlite3.Connection, target: sqlite3.Connection) -> None:
    # All pages in one step: a step-wise copy restarts on every commit by another
    # connection between steps. WAL readers do not block writers, so nothing waits.
    source.backup(target, pages=-1)


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot change the file (no journal-mode switch, no writes)."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def backup(url: str, out: str | Path) -> dict[str, Any]:
    """Write a consistent copy of the database at ``url`` to ``out`` (must not exist).

    The copy is made in a temporary file of its own beside ``out`` (a private name, so
    two backups to one path never write one file: :class:`hilt.staging.PrivateFile`,
    which first removes what backups to ``out`` that were killed left there) and
    published with a hard link, which fails when ``out`` exists: a file that appeared
    at ``out`` while the copy was made is never overwritten, and the backup that finds
    it taken says so."""
    src_path, out = sqlite_path(url), Path(out)
    if not src_path.exists():
        raise InputError(f"{src_path} does not exist", field="--db")
    if out.exists() or out.is_symlink():
        raise _taken(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with PrivateFile(out, ".partial", _SQLITE_COMPANIONS) as temporary:
        tmp = temporary.path
        # the mode of a file that sqlite3 creates (the temporary is private)
        os.chmod(tmp, new_file_mode() & 0o644)
        source = sqlite3.connect(src_path, timeout=60)
        try:
            target = sqlite3.connect(tmp)
            try:
                _copy(source, target)
                target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                target.close()
        finally:
            source.close()
        _publish(tmp, out)
    return {"backup": str(out), "bytes": out.stat().st_size, **verify_file(out)}


def _taken(out: Path) -> InputError:
    return InputError(f"{out} already exists; choose a new file", field="out")


def _publish(tmp: Path, out: Path) -> None:
    """``tmp`` becomes ``out`` only if ``out`` does not exist: a hard link is made or
    refused atomically. Where the file system has no hard links, a rename after one more
    look is the best there is."""
    try:
        os.link(tmp, out)
    except FileExistsError:
        raise _taken(out) from None
    except OSError:
        if out.exists() or out.is_symlink():
            raise _taken(out) from None
        os.rename(tmp, out)


def _schema_revision(con: sqlite3.Connection, path: Path) -> str:
    """The file's schema revision; one this hilt does not know (a newer hilt's) is an
    :class:`InputError` with the message every other command gives for it."""
    from hilt.store.db import check_revision, known_revisions

    try:
        rows = con.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError:
        rows = []
    stored = " ".join(sorted(str(row[0]) for row in rows))
    if not stored:
        raise InputError("not a hilt database (no schema revision is recorded)",
                         file=str(path))
    if stored not in known_revisions():
        try:
            check_revision(stored)
        except InputError as exc:
            raise InputError(exc.reason, file=str(path)) from None
    return stored


def _check_events(con: sqlite3.Connection) -> dict[str, Any]:
    """Each event's payload hashed again and compared with its stored ``content_hash``
    (``sha256_hex`` of the payload text, as :func:`hilt.events.ingest.event_row` stores
    it). Rows are streamed, never all held at once; erased events (whose payload was
    replaced and whose hash is kept to recognise a re-sent copy) are skipped."""
    checked = bad = 0
    first_bad: str | None = None
    columns = {row[1] for row in con.execute("PRAGMA table_info(events)")}
    if not {"id", "content_hash", "payload"} <= columns:  # no events table
        return {"events_checked": 0, "events_bad": 0, "first_bad_event": None}
    # Schema revisions before erasure have no erased_at column.
    erased = " WHERE erased_at IS NULL" if "erased_at" in columns else ""
    # Raw bytes: a damaged byte may leave text that is no longer UTF-8, which must count
    # as a mismatch rather than fail the read. The hash of the bytes is the hash of the
    # text they encode.
    con.text_factory = bytes
    try:
        cursor = con.execute(f"SELECT id, content_hash, payload FROM events{erased}")
        cursor.arraysize = 1000
        while rows := cursor.fetchmany():
            for event_id, stored, payload in rows:
                checked += 1
                if payload is None or stored is None \
                        or sha256_hex(payload) != stored.decode("ascii", "replace"):
                    bad += 1
                    if first_bad is None:
                        first_bad = event_id.decode("utf-8", "replace")
    finally:
        con.text_factory = str
    return {"events_checked": checked, "events_bad": bad, "first_bad_event": first_bad}


def verify_file(path: str | Path) -> dict[str, Any]:
    """Integrity check, schema revision, event content hashes and audit-chain
    verification of a SQLite file, read-only.

    A file that is not a SQLite database (or is truncated or corrupt), or whose schema
    was made by a newer hilt, is an :class:`InputError` naming it. Events whose payload
    no longer matches its hash are counted (``events_bad``, ``first_bad_event``)."""
    from sqlalchemy.orm import Session
    from sqlalchemy.pool import NullPool

    from hilt.store import audit

    path = Path(path)
    try:
        con = _read_only(path)
        try:
            integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
            tables = {row[0] for row in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            if integrity != "ok" or "audit_log" not in tables:
                raise InputError(f"not an intact hilt database ({integrity})", file=str(path))
            revision = _schema_revision(con, path)
            events = _check_events(con)
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise InputError(f"not a readable SQLite database ({exc})", file=str(path)) from None
    # A plain read-only engine: hilt's own engine would switch the file to WAL mode and
    # open write transactions on it.
    engine = sa.create_engine("sqlite://", creator=lambda: _read_only(path),
                              poolclass=NullPool)
    try:
        with Session(engine) as session:
            result = audit.verify(session)
    except sa.exc.DatabaseError as exc:
        detail = str(exc.orig or exc).strip().splitlines()[0]
        raise InputError(f"not a readable hilt database ({detail})", file=str(path)) from None
    except ValueError as exc:  # a stored value the schema's types cannot decode
        raise InputError(f"not a readable hilt database ({exc})", file=str(path)) from None
    finally:
        engine.dispose()
    return {"integrity": integrity, "schema_revision": revision, **events,
            "audit": result.as_dict()}


def restore(backup_file: str | Path, url: str, *, force: bool = False) -> dict[str, Any]:
    """Copy ``backup_file`` over the database at ``url`` (refuses a backup whose audit
    chain does not verify, whose schema a newer hilt made, or with an event whose
    content no longer matches its hash; and an existing database unless ``force``).
    Every check reads the backup before anything is written to the target."""
    backup_file, target_path = Path(backup_file), sqlite_path(url)
    if not backup_file.exists():
        raise InputError(f"{backup_file} does not exist", file=str(backup_file))
    checked = verify_file(backup_file)
    if not checked["audit"]["ok"]:
        raise InputError(f"the backup's audit chain does not verify: "
                         f"{checked['audit']['problem']}", file=str(backup_file))
    if checked["events_bad"]:
        raise InputError(f"{checked['events_bad']} of {checked['events_checked']} events do "
                         f"not match their stored content hash (first: event "
                         f"{checked['first_bad_event']!r}); the backup is damaged",
                         file=str(backup_file))
    if target_path.exists() and not force:
        raise InputError(f"{target_path} exists; pass --force to overwrite it", field="--db")
    target_path.parent.mkdir(parents=True, exist_ok=True)
    source = _read_only(backup_file)
    target = sqlite3.connect(target_path, timeout=60)
    try:
        _copy(source, target)
    finally:
        target.close()
        source.close()
    after = verify_file(target_path)
    return {"restored": str(target_path), "from": str(backup_file), **after}
