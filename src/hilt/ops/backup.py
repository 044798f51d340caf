"""Backups of the SQLite default through SQLite's online backup API.

``backup`` copies a live database while other connections keep reading and writing
(``sqlite3.Connection.backup``; https://www.sqlite.org/backup.html): the copy is a
consistent snapshot of one moment. It is made in one step, under one read transaction:
a copy made in pieces starts over whenever another connection commits between two
pieces, so on a busy server it would never finish; in WAL mode the one read transaction
does not block writers. The backup file is left in rollback-journal mode (one
self-contained file) and is only ever opened read-only afterwards.

The copy is verified before it is published under its name, and a checksum file
``NAME.sha256`` (``sha256sum -c`` format) is written beside it: ``PRAGMA
integrity_check`` checks SQLite's structure, not what the rows say, the audit chain
covers only the audit log and the event hashes only event payloads, so damage anywhere
else in the file (a review's answer, say) is seen only by the checksum.

``restore`` copies a backup over a database the same way, after checking the backup is
an intact hilt database of a schema revision this hilt knows, whose audit chain
verifies, whose events still match their stored content hashes and whose bytes match
its checksum file, and verifies the copy again afterwards. It waits a bounded time for
the target's write lock (copying in steps, so Ctrl-C and SIGTERM stop it). PostgreSQL
deployments use ``pg_dump``/``pg_restore`` (see docs/operations.md).
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
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
CHECKSUM_SUFFIX = ".sha256"
# How long a copy waits for a database lock another connection holds (a server or a
# worker writing the target of a restore) before giving up.
LOCK_WAIT_S = 60.0
# Pages a restore copies per step: between steps Ctrl-C and SIGTERM are seen.
_RESTORE_STEP_PAGES = 1024
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class LockWaitExpired(Exception):
    """A database stayed locked by another connection for longer than the wait."""


def sqlite_path(url: str) -> Path:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise InputError(f"not a database URL: {url!r}", field="--db") from None
    if not parsed.drivername.startswith("sqlite") or not parsed.database \
            or parsed.database == ":memory:":
        raise InputError("backup/restore work on a SQLite file database; use pg_dump "
                         "for PostgreSQL (docs/operations.md)", field="--db")
    return Path(parsed.database)


def _copy(source: sqlite3.Connection, target: sqlite3.Connection, *, pages: int = -1,
          wait_s: float = LOCK_WAIT_S) -> None:
    """Copy ``source`` into ``target`` with SQLite's backup API. A backup copies all
    pages in one step (``pages=-1``): a step-wise copy of a live database restarts on
    every commit by another connection between steps, and WAL readers do not block
    writers. A lock held elsewhere is waited for at most ``wait_s`` seconds in all
    (:class:`LockWaitExpired`): the connections' own busy timeouts are short, so each
    try returns and the progress callback runs, where a pending Ctrl-C or SIGTERM is
    raised too (the driver's retry loop alone would wait for ever, deaf to both)."""
    busy_since: list[float] = []

    def progress(status: int, _remaining: int, _total: int) -> None:
        if status not in _BUSY:
            busy_since.clear()
        elif not busy_since:
            busy_since.append(time.monotonic())
        elif time.monotonic() - busy_since[0] > wait_s:
            raise LockWaitExpired

    source.backup(target, pages=pages, progress=progress, sleep=0.1)


def _connect(path: Path | str) -> sqlite3.Connection:
    """A writing connection whose lock waits are short (see :func:`_copy`)."""
    return sqlite3.connect(path, timeout=0.2)


def _read_only(path: Path, *, immutable: bool = False) -> sqlite3.Connection:
    """A connection that cannot change the file (no journal-mode switch, no writes);
    ``immutable``: not even a lock is taken, for a file nothing else writes (a backup).
    A file in WAL mode is never opened immutable: that would ignore its ``-wal`` file,
    and with it the latest commits of a live database given in a backup's place."""
    flags = "?mode=ro&immutable=1" if immutable and not _wal_mode(path) else "?mode=ro"
    return sqlite3.connect(f"{path.resolve().as_uri()}{flags}", uri=True, timeout=0.2)


def _wal_mode(path: Path) -> bool:
    """Whether the database header says WAL mode (bytes 18 and 19 are 2)."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[18] == 2


def checksum_path(path: Path) -> Path:
    """The checksum file of a backup: ``NAME.sha256`` beside it."""
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_checksum(out: Path, digest: str) -> Path:
    """``NAME.sha256`` in ``sha256sum`` format (``sha256sum -c NAME.sha256`` checks it),
    written under a temporary name and renamed into place."""
    path = checksum_path(out)
    with PrivateFile(path, ".tmp") as temporary:
        os.chmod(temporary.path, new_file_mode() & 0o644)
        with temporary.text_writer(newline="\n") as fh:
            fh.write(f"{digest}  {out.name}\n")
        os.replace(temporary.path, path)
    return path


_CHECKSUM_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")


def check_checksum(path: Path) -> dict[str, Any]:
    """``path`` against its checksum file: ``{"checksum": "ok" | "missing" | "mismatch"
    | "unreadable", "checksum_file": ...}``; a mismatch names the digests."""
    file = checksum_path(path)
    found: dict[str, Any] = {"checksum_file": str(file)}
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {**found, "checksum": "missing"}
    except (OSError, UnicodeDecodeError):
        return {**found, "checksum": "unreadable"}
    matches = [m for m in map(_CHECKSUM_LINE.fullmatch, lines) if m is not None]
    named = [m for m in matches if m[2] == path.name] or matches[:1]
    if not named:
        return {**found, "checksum": "unreadable"}
    expected, actual = named[0][1].lower(), file_sha256(path)
    if expected != actual:
        return {**found, "checksum": "mismatch", "sha256": actual, "expected": expected}
    return {**found, "checksum": "ok", "sha256": actual}


def backup(url: str, out: str | Path, *, wait_s: float = LOCK_WAIT_S) -> dict[str, Any]:
    """Write a consistent copy of the database at ``url`` to ``out`` (must not exist),
    and its checksum file ``out.sha256``.

    The copy is made in a temporary file of its own beside ``out`` (a private name, so
    two backups to one path never write one file: :class:`hilt.staging.PrivateFile`,
    which first removes what backups to ``out`` that were killed left there), verified
    there (:func:`verify_file`), and published with a hard link, which fails when
    ``out`` exists: a file that appeared at ``out`` while the copy was made is never
    overwritten, and the backup that finds it taken says so. A copy that is not an
    intact hilt database is never published: the error names the database copied."""
    src_path, out = sqlite_path(url), Path(out)
    if not src_path.is_file():
        what = "is not a file" if src_path.exists() else "does not exist"
        raise InputError(f"{src_path} {what}", field="--db")
    if out.exists() or out.is_symlink():
        raise _taken(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = PrivateFile(out, ".partial", _SQLITE_COMPANIONS)
    except OSError as exc:
        raise _unwritable(out, exc, "out") from None
    with staging as temporary:
        tmp = temporary.path
        # the mode of a file that sqlite3 creates (the temporary is private)
        os.chmod(tmp, new_file_mode() & 0o644)
        try:
            _copy_to(src_path, tmp, wait_s=wait_s)
        except sqlite3.OperationalError:
            raise  # the file system or a lock, not the database's content
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            detail = _damaged_text(exc) if isinstance(exc, UnicodeDecodeError) else exc
            raise InputError(f"not a readable SQLite database ({detail}); nothing was "
                             f"written to {out}", file=str(src_path)) from None
        try:
            checked = verify_file(tmp, immutable=True)
        except InputError as exc:
            raise InputError(f"{exc.reason}: this database's copy fails the check, so "
                             f"nothing was written to {out}", file=str(src_path)) from None
        digest = file_sha256(tmp)
        _publish(tmp, out)
    checksum = _write_checksum(out, digest)
    return {"backup": str(out), "bytes": out.stat().st_size, "sha256": digest,
            "checksum_file": str(checksum), **checked}


def _copy_to(src_path: Path, tmp: Path, *, wait_s: float) -> None:
    source = sqlite3.connect(src_path, timeout=0.2)
    try:
        target = sqlite3.connect(tmp)
        try:
            _locked_copy(source, target, src_path, wait_s=wait_s)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            target.close()
    finally:
        source.close()


def _locked_copy(source: sqlite3.Connection, target: sqlite3.Connection, locked: Path,
                 *, wait_s: float, pages: int = -1) -> None:
    """:func:`_copy`; a lock that outlasts ``wait_s`` is an error naming ``locked``."""
    try:
        _copy(source, target, pages=pages, wait_s=wait_s)
    except LockWaitExpired:
        raise InputError(f"{locked} stayed locked by another connection for {wait_s:g} s "
                         "(a 'hilt serve', 'hilt worker' or other program writing it); "
                         "stop what uses it, or wait longer with --wait",
                         field="--db") from None


def _unwritable(path: Path, exc: OSError, field: str) -> InputError:
    """A folder that cannot be made or written to (a file in the way, no permission, a
    read-only file system): one line naming the path, not a traceback."""
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        reason = f"{blocker} is a file, not a folder"
    else:
        reason = f"{exc.strerror or exc}: {exc.filename or path.parent}"
    return InputError(f"cannot write {path} ({reason}); nothing was written", field=field)


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


def _damaged_text(exc: UnicodeDecodeError) -> str:
    """SQLite's message for a damaged schema quotes the damaged bytes, which the driver
    then fails to decode: the message, with those bytes escaped."""
    text = exc.object.decode("utf-8", "backslashreplace") \
        if isinstance(exc.object, bytes) else str(exc)
    return text.strip().splitlines()[0] if text.strip() else str(exc)


def _structure(con: sqlite3.Connection, path: Path) -> tuple[str, str, dict[str, Any]]:
    """Integrity, schema revision and event hashes of an open file (see verify_file)."""
    integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    if integrity != "ok":
        raise InputError(f"not an intact hilt database ({integrity})", file=str(path))
    tables = {row[0] for row in con.execute(
        "SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        raise InputError("not a hilt database: it holds no tables (an empty file?)",
                         file=str(path))
    if "audit_log" not in tables:
        raise InputError("not a hilt database: it has no audit_log table", file=str(path))
    return integrity, _schema_revision(con, path), _check_events(con)


def verify_file(path: str | Path, *, immutable: bool = False) -> dict[str, Any]:
    """Integrity check, schema revision, event content hashes and audit-chain
    verification of a SQLite file, read-only (``immutable``: without even taking a
    lock, for a file nothing else writes, such as a backup).

    A file that is not a SQLite database (or is truncated or corrupt, its schema
    included), or whose schema was made by a newer hilt, is an :class:`InputError`
    naming it. Events whose payload no longer matches its hash are counted
    (``events_bad``, ``first_bad_event``)."""
    from sqlalchemy.orm import Session
    from sqlalchemy.pool import NullPool

    from hilt.store import audit

    path = Path(path)
    try:
        con = _read_only(path, immutable=immutable)
        try:
            integrity, revision, events = _structure(con, path)
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise InputError(f"not a readable SQLite database ({exc})", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not a readable SQLite database ({_damaged_text(exc)})",
                         file=str(path)) from None
    # A plain read-only engine: hilt's own engine would switch the file to WAL mode and
    # open write transactions on it.
    engine = sa.create_engine("sqlite://", poolclass=NullPool,
                              creator=lambda: _read_only(path, immutable=immutable))
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


def verify_backup(path: str | Path) -> dict[str, Any]:
    """Everything ``restore`` checks of a backup, without writing anything anywhere
    (``hilt backup verify``): :func:`verify_file` on the file opened immutable, and its
    checksum file (:func:`check_checksum`). ``ok`` says whether all of it passed."""
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise InputError(f"{path} {what}", file=str(path))
    checked = verify_file(path, immutable=True)
    checksum = check_checksum(path)
    ok = checked["audit"]["ok"] and not checked["events_bad"] \
        and checksum["checksum"] == "ok"
    return {"file": str(path), "ok": ok, **checksum, **checked}


def _refuse_damage(checked: dict[str, Any], backup_file: Path) -> None:
    if not checked["audit"]["ok"]:
        raise InputError(f"the backup's audit chain does not verify: "
                         f"{checked['audit']['problem']}", file=str(backup_file))
    if checked["events_bad"]:
        raise InputError(f"{checked['events_bad']} of {checked['events_checked']} events do "
                         f"not match their stored content hash (first: event "
                         f"{checked['first_bad_event']!r}); the backup is damaged",
                         file=str(backup_file))


def _refuse_checksum(backup_file: Path, checksum: dict[str, Any],
                     without_checksum: bool) -> None:
    """A mismatch is always refused (the file changed since its backup was made); a
    missing or unreadable checksum file unless the operator says to go without."""
    state, file = checksum["checksum"], checksum["checksum_file"]
    if state == "mismatch":
        raise InputError(f"the file does not match its checksum file {file} (sha256 "
                         f"{checksum['sha256']}, expected {checksum['expected']}); the "
                         "backup is damaged or was changed after it was made",
                         file=str(backup_file))
    if state != "ok" and not without_checksum:
        raise InputError(f"its checksum file {file} is {state}, so damage the other "
                         "checks cannot see would go unnoticed; restore it anyway with "
                         "--without-checksum", file=str(backup_file))


def _audit_head(path: Path) -> int | None:
    """The audit chain's last sequence number in a database file, if it has one."""
    try:
        con = _read_only(path)
        try:
            row = con.execute("SELECT seq FROM audit_head WHERE id = 1").fetchone()
        finally:
            con.close()
    except (sqlite3.Error, UnicodeDecodeError):
        return None
    return int(row[0]) if row else None


def _check_target(backup_file: Path, target_path: Path, force: bool) -> None:
    if target_path.is_dir():
        raise InputError(f"{target_path} is a folder; name the database file to restore "
                         "to (sqlite:///FOLDER/hilt.db)", field="--db")
    if target_path.exists():
        if os.path.samefile(backup_file, target_path):
            raise InputError(f"{target_path} is the backup file itself; restore it to "
                             "another database", field="--db")
        if not force:
            raise InputError(f"{target_path} exists; pass --force to overwrite it",
                             field="--db")


def restore(backup_file: str | Path, url: str, *, force: bool = False,
            without_checksum: bool = False, wait_s: float = LOCK_WAIT_S,
            actor: str = "cli") -> dict[str, Any]:
    """Copy ``backup_file`` over the database at ``url`` (refuses a backup whose audit
    chain does not verify, whose schema a newer hilt made, with an event whose content
    no longer matches its hash, or whose bytes do not match its checksum file; one
    without a checksum file unless ``without_checksum``; an existing database unless
    ``force``; the backup file itself as target). Every check reads the backup before
    anything is written to the target; the target's write lock is waited for at most
    ``wait_s`` seconds. ``audit_seq_reused_after``: the backup's last audit sequence
    number, after which the restored database hands out numbers again that entries of
    the database it replaces (and webhook deliveries of them) may already have had.

    A restore whose copy verifies records itself: one ``store.restored`` audit entry,
    appended to the restored chain, names the backup file, its sha256 and its last
    audit entry (``backup_audit_seq``, ``backup_audit_hash``), the audit head of the
    database replaced, and the user and host that ran it (``restored_entry``: its seq
    and hash). A refused restore writes nothing, and a copy that fails its check gets
    no entry."""
    backup_file, target_path = Path(backup_file), sqlite_path(url)
    if not backup_file.is_file():
        what = "is not a file" if backup_file.exists() else "does not exist"
        raise InputError(f"{backup_file} {what}", file=str(backup_file))
    _check_target(backup_file, target_path, force)
    checked = verify_file(backup_file, immutable=True)
    _refuse_damage(checked, backup_file)
    checksum = check_checksum(backup_file)
    _refuse_checksum(backup_file, checksum, without_checksum)
    replaced_head = _audit_head(target_path) if target_path.exists() else None
    try:
        target_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(target_path, exc, "--db") from None
    source = _read_only(backup_file, immutable=True)
    try:
        target = _connect(target_path)
        try:
            _locked_copy(source, target, target_path, wait_s=wait_s,
                         pages=_RESTORE_STEP_PAGES)
        finally:
            target.close()
    finally:
        source.close()
    after = verify_file(target_path)
    head = checked["audit"].get("head") or {"seq": 0, "hash": None}
    result = {"restored": str(target_path), "from": str(backup_file),
              "checksum": checksum["checksum"], **after,
              "audit_seq_reused_after": head["seq"], "replaced_audit_head": replaced_head,
              "restored_entry": None}
    if after["audit"]["ok"] and not after["events_bad"]:
        digest = checksum.get("sha256") or file_sha256(backup_file)
        entry, audit_after = _record_restore(url, {
            "backup_file": backup_file.name, "backup_sha256": digest,
            "checksum": checksum["checksum"], "backup_audit_seq": head["seq"],
            "backup_audit_hash": head["hash"], "replaced_audit_head": replaced_head,
            **_who()}, actor=actor, backup_head=head)
        result.update(audit=audit_after, restored_entry=entry)
    return result


def _who() -> dict[str, str | None]:
    """The operating-system user and host that ran the restore: the CLI's actor says
    only that it was the command line."""
    import getpass
    import socket

    try:
        user: str | None = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry for the uid
        user = None
    return {"user": user, "host": socket.gethostname() or None}


def _record_restore(url: str, payload: dict[str, Any], *, actor: str,
                    backup_head: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Append the ``store.restored`` entry to the restored database, as hilt appends
    every entry (chained after the backup's head), and verify the chain with it before
    committing: the entry is there only on a chain that verifies and still holds the
    backup's head. Webhook dispatch picks it up like any other entry. Returns the
    entry's ``{"seq", "hash", "action"}`` and the chain's verification."""
    from hilt.store import audit
    from hilt.store.db import make_engine, transaction
    from hilt.store.tables.core import AuditHeadRow

    # create=True exempts the engine from the schema check: a backup an older hilt made
    # is restored as it is (hilt init upgrades it afterwards), and its audit tables are
    # those of every revision.
    engine = make_engine(url, create=True)
    try:
        with transaction(engine) as session:
            audit.append(session, actor=actor, action="store.restored", entity_type="store",
                         entity_id=payload["backup_file"], payload=payload)
            expect = [(backup_head["seq"], backup_head["hash"])] \
                if backup_head["seq"] else []
            verified = audit.verify(session, expect=expect)
            if not verified.ok:  # rolled back: nothing of the restore is recorded
                raise InputError(f"the restored audit chain does not verify with the "
                                 f"restore's entry: {verified.problem}", field="--db")
            new_head = session.get_one(AuditHeadRow, 1)
            entry = {"seq": new_head.seq, "hash": new_head.hash, "action": "store.restored"}
    finally:
        engine.dispose()
    return entry, verified.as_dict()
