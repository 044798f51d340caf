"""Ingest: validated events into the store, idempotently and all-or-nothing.

An event's id is given or derived from its content hash, and unique in the store, so
re-sending a batch writes nothing new and reports how many were new. A batch is one
transaction together with its audit entry and the escalation rules it triggers: either
all of it is visible or none of it is.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import sqlalchemy as sa
from pydantic_core import PydanticSerializationError
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.bulk import gc_paused
from hilt.canonical import sha256_hex
from hilt.errors import InputError
from hilt.events.model import FeedbackEvent
from hilt.events.readers import file_format, read_records
from hilt.events.text import unstorable_text_error
from hilt.events.validate import Parsed, parse_all
from hilt.staging import PrivateFile
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.umask import new_file_mode

BULK_COLUMNS = ("id", "content_hash", "created_at", "ingested_at", "source", "subject_id",
                 "model_version", "policy_version", "prompt_template_id",
                 "prompt_template_version", "role_format", "consent_scopes", "ingest_batch",
                 "payload")
_ID, _HASH, _CREATED_AT, _INGESTED_AT = 0, 1, 2, 3  # positions in BULK_COLUMNS
_BATCH = BULK_COLUMNS.index("ingest_batch")
_PAYLOAD = BULK_COLUMNS.index("payload")


@dataclass(frozen=True)
class IngestResult:
    batch_id: str
    received: int
    new: int
    duplicates: int
    rejected: int = 0
    escalated: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def consent_column(scopes: Sequence[str]) -> str:
    """``",review,train,"``: sorted, deduplicated, comma-fenced for LIKE filters."""
    unique = sorted(set(scopes))
    return "," + ",".join(unique) + ("," if unique else "")


def event_row(event: FeedbackEvent, batch_id: str, now: datetime) -> tuple[Any, ...]:
    """The event as a row of ``BULK_COLUMNS`` values: plain tuples are what both bulk
    paths hand to the driver, so no per-row mapping is built and taken apart again."""
    payload = event.model_dump_json(exclude={"id"})
    ctx = event.context
    created = event.created_at or now
    if created.tzinfo is None:  # naive times are UTC, as hilt.store.tables.base stores them
        created = created.replace(tzinfo=UTC)
    return (event.id, sha256_hex(payload), created, now, ctx.source,
            ctx.subject_id, ctx.model_version, ctx.policy_version, ctx.prompt_template_id,
            ctx.prompt_template_version, ctx.role_format, consent_column(ctx.consent),
            batch_id, payload)


def _dedupe_batch(rows: list[tuple[Any, ...]], lines: Sequence[int | None],
                  file: str | None) -> list[tuple[Any, ...]]:
    seen: dict[str, tuple[str, int | None]] = {}
    unique = []
    for row, line in zip(rows, lines, strict=True):
        prior = seen.get(row[_ID])
        if prior is None:
            seen[row[_ID]] = (row[_HASH], line)
            unique.append(row)
        elif prior[0] != row[_HASH]:
            raise InputError(f"id {row[_ID]!r} repeats line {prior[1]} with other content",
                             file=file, line=line, field="id")
    return unique


def _existing(session: Session, ids: list[str]) -> dict[str, str]:
    """Content hashes of the ids already stored, in one query with one parameter (an IN
    list of a thousand parameters costs more to compile and plan than to run)."""
    if session.get_bind().dialect.name == "postgresql":
        from hilt.events.pg_copy import stored_hashes

        return stored_hashes(session, ids)
    dbapi = session.connection().connection.driver_connection
    rows = dbapi.execute(  # type: ignore[union-attr]
        "SELECT id, content_hash FROM events WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(ids),))
    return dict(rows)


def store_events(session: Session, events: Sequence[FeedbackEvent], *, actor: str,
                 file: str | None = None, lines: Sequence[int | None] | None = None,
                 source_name: str | None = None, rejected: int = 0,
                 escalate: bool = True) -> IngestResult:
    """Write events in the caller's transaction; returns counts. Raises on conflicts.

    ``escalate=False`` stores events that are not production traffic (a check's review
    sample, which opens its own tasks) without running the active escalation rules on
    them; the audit entry then says ``"escalation": false``.

    On PostgreSQL a batch of distinct ids is first streamed into the table as its rows
    are made, so that the server stores rows while the next ones are encoded; ``events``
    is read again (to make the rows for the checked path) when an id is already stored,
    and, while an escalation rule set is active, for the new events.
    """
    batch_id = "ib_" + uuid.uuid4().hex[:16]
    now = utcnow()

    def line_of(i: int) -> int | None:
        return lines[i] if lines is not None else None

    if any(e.id is None for e in events):
        with_ids = []
        for i, event in enumerate(events):
            try:
                with_ids.append(event.with_id())
            except UnicodeEncodeError as exc:
                _refuse_unencodable(exc, event, file, line_of(i))
        events = with_ids
    ids = [str(e.id) for e in events]

    def rows() -> Iterator[tuple[Any, ...]]:
        for i, event in enumerate(events):
            try:
                row = event_row(event, batch_id, now)
            except (PydanticSerializationError, UnicodeEncodeError) as exc:
                _refuse_unencodable(exc, event, file, line_of(i))
            # PostgreSQL cannot store NUL in text or jsonb; refused on every backend.
            if ("\\u0000" in row[_PAYLOAD]  # or an escaped "\\u0000"
                    or "\x00" in row[_ID] or not row[_ID].isascii()):
                error = _text_error(event, file, line_of(i))
                if error is not None:
                    raise error
            yield row

    if ids and len(set(ids)) == len(ids) and _copy_if_all_new(session, rows()):
        fresh_ids = ids
    else:
        fresh_ids = _insert_checked(session, list(rows()), lines, file)
    new = len(fresh_ids)
    escalated = 0
    if new and escalate:
        escalated = _after_ingest(session, events, set(fresh_ids), actor)
    result = IngestResult(batch_id, len(events), new, len(events) - new, rejected, escalated)
    payload: dict[str, Any] = {
        "source": source_name, "received": len(events), "new": new, "rejected": rejected,
        "ids_sha256": sha256_hex("\n".join(sorted(fresh_ids)))}
    if not escalate:
        payload["escalation"] = False
    audit.append(session, actor=actor, action="events.ingest", entity_type="ingest_batch",
                 entity_id=batch_id, payload=payload)
    return result


def _refuse_unencodable(exc: Exception, event: FeedbackEvent, file: str | None,
                        line: int | None) -> NoReturn:
    """Encoding ``event`` as UTF-8 failed: an event built in Python can hold a string
    with no UTF-8 form (a lone surrogate), refused naming its field rather than as an
    encoding error naming nothing."""
    error = _text_error(event, file, line)
    if error is None:
        raise exc
    raise error from None


def _text_error(event: FeedbackEvent, file: str | None, line: int | None
                ) -> InputError | None:
    """The error for an event holding text no store can hold (a NUL character, a lone
    surrogate), naming the first field with one; ``None`` when it holds none (a text
    may spell out a backslash and "u0000")."""
    return unstorable_text_error(event.model_dump(mode="json"), file=file, line=line)


def _insert_checked(session: Session, rows: list[tuple[Any, ...]],
                    lines: Sequence[int | None] | None, file: str | None) -> list[str]:
    """Insert the rows whose ids are not stored yet, after checking that the stored ones
    hold the same content; returns the ids inserted."""
    lines = list(lines) if lines is not None else [None] * len(rows)
    unique = _dedupe_batch(rows, lines, file)
    line_of = {r[_ID]: ln for r, ln in zip(rows, lines, strict=True)}
    existing = _existing(session, [r[_ID] for r in unique])
    for row in unique:
        if row[_ID] in existing and existing[row[_ID]] != row[_HASH]:
            raise InputError(f"id {row[_ID]!r} is already stored with other content",
                             file=file, line=line_of[row[_ID]], field="id")
    fresh = [r for r in unique if r[_ID] not in existing]
    new = _insert(session, fresh)
    if new == len(fresh):
        return [r[_ID] for r in fresh]
    # A concurrent ingest stored some of them after the check: which ones were ours?
    ours = _batch_ids(session, [r[_ID] for r in fresh], fresh[0][_BATCH])
    return [r[_ID] for r in fresh if r[_ID] in ours]


def _batch_ids(session: Session, ids: list[str], batch_id: str) -> set[str]:
    """Which of ``ids`` this batch wrote (rare path: a concurrent ingest won some)."""
    from hilt.store.tables.core import EventRow

    q = sa.select(EventRow.id).where(EventRow.id.in_(ids), EventRow.ingest_batch == batch_id)
    return set(session.execute(q).scalars())


def _copy_if_all_new(session: Session, rows: Iterable[tuple[Any, ...]]) -> bool:
    """PostgreSQL: write a batch of only new ids without looking them up first (see
    hilt.events.pg_copy); False, with nothing written, when some id is stored."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    from hilt.events.pg_copy import copy_if_all_new

    return copy_if_all_new(session, rows)


def _insert(session: Session, rows: list[tuple[Any, ...]]) -> int:
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from hilt.events.pg_copy import copy_insert

        return copy_insert(session, rows)
    # SQLite: the driver's executemany on plain tuples, inside the session's transaction;
    # SQLAlchemy's per-row parameter processing would cost as much as the insert itself.
    # Datetimes go in as the text SQLAlchemy would store; a batch shares one ingest time.
    sql = (f"INSERT INTO events ({', '.join(BULK_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(BULK_COLUMNS))}) ON CONFLICT (id) DO NOTHING")
    now = rows[0][_INGESTED_AT]
    now_text = _sqlite_datetime(now)
    dbapi = session.connection().connection.driver_connection
    before = dbapi.total_changes  # type: ignore[union-attr]
    dbapi.executemany(sql, [  # type: ignore[union-attr]
        (r[_ID], r[_HASH],
         now_text if r[_CREATED_AT] == now else _sqlite_datetime(r[_CREATED_AT]), now_text,
         *r[_INGESTED_AT + 1:]) for r in rows])
    return int(dbapi.total_changes - before)  # type: ignore[union-attr]


def _sqlite_datetime(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    # SQLAlchemy's SQLite DateTime format; strftime's %Y does not pad years below 1000
    # ("60-06-03 …"), which could then not be read back
    return (f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:"
            f"{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}")


def _after_ingest(session: Session, events: Sequence[FeedbackEvent], new_ids: set[str],
                  actor: str) -> int:
    """Run the active escalation rules on newly stored events (same transaction)."""
    from hilt.review.escalation import active_rule_set, apply_active_rules  # review imports events

    if active_rule_set(session) is None:
        return 0  # checked first: without rules the events are not read a second time
    # one event sent twice in a batch is stored once, and escalated once
    fresh = list({e.id: e for e in events if e.id in new_ids}.values())
    return apply_active_rules(session, fresh, actor=actor)


def ingest_events(engine: Engine, events: Iterable[FeedbackEvent | dict[str, Any]], *,
                  actor: str = "api", source_name: str | None = None) -> IngestResult:
    """The Python API: validate and store events in one transaction."""
    from hilt.events.validate import parse_event

    parsed = [e if isinstance(e, FeedbackEvent) else parse_event(e, line=i)
              for i, e in enumerate(events, start=1)]  # ids: filled in by store_events
    with transaction(engine) as session:
        return store_events(session, parsed, actor=actor, source_name=source_name,
                            lines=range(1, len(parsed) + 1))  # as parse errors count


def ingest_file(engine: Engine, path: str | Path, *, actor: str = "cli",
                skip_invalid: bool = False, rejects_path: str | Path | None = None
                ) -> IngestResult:
    """Ingest a JSONL/CSV/Parquet file; all-or-nothing unless ``skip_invalid``.

    A file without a single record (empty, blank lines only, a CSV header alone, a
    Parquet file without rows) is refused: it is a wrong or cut-short file far more often
    than a batch meant to hold nothing.
    """
    path = Path(path)
    target = Path(rejects_path) if rejects_path else path.with_name(
        path.name + ".rejects.jsonl")
    if skip_invalid:
        check_rejects_target(target, path)
    # A file's validated events stay alive until its one transaction commits.
    with gc_paused():
        parsed = parse_all(read_records(path, lenient=skip_invalid), file=str(path),
                           skip_invalid=skip_invalid)
        if not parsed.events and not parsed.rejects:
            raise InputError(f"the file has no events ({_EMPTY[file_format(path)]})",
                             file=str(path))
        # The rejects are written to a temporary file of their own beside their target
        # (a unique name: two runs on one file never share it) before the events are
        # stored, so that an unwritable rejects path stops the run with nothing stored;
        # the file is renamed into place as the last step before the commit, so a
        # committed run never leaves its rejects only in the temporary file, even when
        # killed right after the commit.
        tmp: PrivateFile | None = None
        try:
            with transaction(engine) as session:
                if skip_invalid:
                    reject_conflicting_ids(session, parsed, file=str(path))
                if parsed.rejects:
                    tmp = _write_rejects(target, parsed.rejects)
                result = store_events(session, parsed.events, actor=actor, file=str(path),
                                      lines=parsed.lines, source_name=str(path),
                                      rejected=len(parsed.rejects))
                if tmp is not None:
                    _put_in_place(tmp.path, target)
        finally:
            if tmp is not None:
                tmp.close()  # removes it unless it is in place
    return result


_EMPTY = {"jsonl": "it is empty or holds only blank lines",
          "csv": "it holds a header and no rows", "parquet": "it has no rows"}


def check_rejects_target(target: Path, source: Path) -> None:
    """Refuse, before the file is read and anything is stored, a rejects path that can
    never take the rejects or would destroy data: a folder, a path in a folder that does
    not exist, and the input file itself under any name (a hard link, a symbolic link
    either way), which the rejects would replace. Whether the folder is writable is found
    out when the rejects are written, still before the commit: a file without bad lines
    writes none, so its rejects path need not be writable."""
    if target.is_dir():
        raise InputError("is a folder; name the rejects file to write", file=str(target),
                         field="--rejects")
    parent = target.parent
    if not parent.is_dir():
        reason = "is not a folder" if parent.exists() else "does not exist"
        raise InputError(f"folder {parent} {reason}", file=str(target), field="--rejects")
    try:
        same = target.exists() and source.exists() and os.path.samefile(target, source)
    except OSError:
        same = False
    if same:
        raise InputError("is the input file: the rejects would replace the events it holds",
                         file=str(target), field="--rejects")


def _write_rejects(target: Path, rejects: list[dict[str, Any]]) -> PrivateFile:
    """The rejects, one JSON line each, in a new temporary file beside ``target``
    (:class:`hilt.staging.PrivateFile`: what killed runs left for ``target`` is removed
    first); the caller closes it."""
    try:
        tmp = PrivateFile(target, ".tmp")
    except OSError as exc:
        raise InputError(f"cannot write the rejects file ({exc.strerror})",
                         file=str(target), field="--rejects") from None
    try:
        with tmp.text_writer() as fh:
            for rej in rejects:
                fh.write(_reject_line(rej))
    except BaseException as exc:
        tmp.close()
        if isinstance(exc, OSError):
            raise InputError(f"cannot write the rejects file ({exc.strerror})",
                             file=str(target), field="--rejects") from None
        raise
    return tmp


def _reject_line(reject: dict[str, Any]) -> str:
    """One rejects line: UTF-8 as written, except where the rejected line holds a lone
    surrogate (a CSV cell's JSON can), which only JSON's ``\\ud800`` escape can write."""
    line = json.dumps(reject, ensure_ascii=False, default=str)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(reject, default=str)
    return line + "\n"


def _put_in_place(tmp: Path, target: Path) -> None:
    # the mode a file made by open() gets (the temporary is private)
    try:
        os.chmod(tmp, new_file_mode())
        tmp.replace(target)
    except OSError as exc:
        raise InputError(f"cannot write the rejects file ({exc.strerror})",
                         file=str(target), field="--rejects") from None


def reject_conflicting_ids(session: Session, parsed: Parsed, *, file: str | None) -> None:
    """Move to ``parsed.rejects`` the events whose given id is stored with other content
    or repeats an earlier line's id with other content (the first line keeps the id).

    Without ``--skip-invalid`` these refuse the whole file (:func:`store_events`); with
    it they are bad lines like any other. Only events with a given id can conflict: a
    derived id is the hash of the content.
    """
    given = [(e, ln) for e, ln in zip(parsed.events, parsed.lines, strict=True)
             if e.id is not None]
    if not given:
        return
    stored = _existing(session, sorted({str(e.id) for e, _ in given}))
    first: dict[str, tuple[str, int]] = {}
    bad: dict[int, InputError] = {}
    for event, line in given:
        digest = sha256_hex(event.model_dump_json(exclude={"id"}))
        eid = str(event.id)
        if eid in stored and stored[eid] != digest:
            bad[id(event)] = InputError(f"id {eid!r} is already stored with other content",
                                        file=file, line=line, field="id")
        elif eid in first and first[eid][0] != digest:
            bad[id(event)] = InputError(f"id {eid!r} repeats line {first[eid][1]} with "
                                        "other content", file=file, line=line, field="id")
        else:
            first.setdefault(eid, (digest, line))
    if not bad:
        return
    kept_events, kept_lines = [], []
    for event, line in zip(parsed.events, parsed.lines, strict=True):
        err = bad.get(id(event))
        if err is None:
            kept_events.append(event)
            kept_lines.append(line)
        else:
            parsed.rejects.append({**err.as_dict(), "record": event.model_dump(mode="json")})
    parsed.events, parsed.lines = kept_events, kept_lines
