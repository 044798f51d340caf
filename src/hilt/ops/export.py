"""Export of reviewed items: each task with its event and every review, as JSON lines.

Streams in pages of ``page`` tasks (keyset pagination on the task id, three queries per
page: tasks with their events, reviews, final labels), so memory stays flat and the
first line leaves before the last page is read. Each page is read in a short read-only
transaction of its own (:func:`hilt.store.db.read_only_engine`), and none is open while
lines wait for the consumer: a slow client of the HTTP export holds up no writer (on
SQLite a transaction held across the stream would block every write). Each page is a
consistent snapshot; a task changed while the export runs shows in the state its page
saw. The event payload is stored as JSON
text and goes into the line as that text: parsing and re-encoding it was most of the
cost of an export.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Select
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.orm import Session

from hilt.errors import InputError
from hilt.staging import PrivateFile
from hilt.store.db import read_only_engine
from hilt.store.tables.core import EventRow
from hilt.store.tables.review import TASK_STATUSES, FinalLabelRow, ReviewRow, ReviewTaskRow
from hilt.umask import new_file_mode

_dumps = partial(json.dumps, ensure_ascii=False, default=str)
# A line is mostly strings written the way json.dumps(ensure_ascii=False) writes them;
# the C string encoder is called on them directly, since going through json.dumps
# (which builds an encoder on every call with these options) took a third of an export.
_str = encode_basestring


def _value(value: Any) -> str:
    """A scalar as json.dumps writes it: a string, a number, a boolean or null."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return _str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    return _dumps(value)  # floats (json.dumps spells NaN and infinities its own way)


_Task = Row[*tuple[Any, ...]]  # a row of _tasks' select
_Q = TypeVar("_Q", bound=Select[*tuple[Any, ...]])


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _page(q: _Q, after: str, status: str | None, last: str | None = None) -> _Q:
    """Restrict a query joined to the tasks to one page of them. A key range rather than
    an IN list of the page's ids: thousands of parameters cost more to send and plan
    than the rows cost to read."""
    t = ReviewTaskRow
    q = q.where(t.id > after)
    if last is not None:
        q = q.where(t.id <= last)
    return q.where(t.status == status) if status else q


def _tasks(conn: Connection, after: str, status: str | None, page: int) -> Sequence[_Task]:
    t = ReviewTaskRow
    q = (sa.select(t.id, t.event_id, t.status, t.pool, t.severity, t.rubric_id,
                   t.rubric_version, t.overlap_k, t.is_gold, t.created_at, t.resolved_at,
                   sa.cast(EventRow.payload, sa.Text).label("payload"))
         .join(EventRow, EventRow.id == t.event_id))
    return conn.execute(_page(q, after, status).order_by(t.id).limit(page)).all()


def _reviews(conn: Connection, after: str, last: str, status: str | None
             ) -> dict[str, list[str]]:
    """Each task's reviews, encoded at once: a page keeps strings, not thousands of dicts
    that the garbage collector would have to scan. The answers go in as their stored
    JSON text, like the event payload."""
    r = ReviewRow
    q = (sa.select(r.task_id, r.id, r.reviewer_id, sa.cast(r.answers, sa.Text),
                   r.confidence, r.rationale, r.late, r.submitted_at)
         .join(ReviewTaskRow, ReviewTaskRow.id == r.task_id))
    out: dict[str, list[str]] = {}
    rows = conn.execute(_page(q, after, status, last).order_by(r.submitted_at, r.id)).all()
    for task_id, rid, reviewer, answers, confidence, rationale, late, at in rows:
        out.setdefault(task_id, []).append(
            f'{{"review_id": {_str(rid)}, "reviewer_id": {_str(reviewer)}, '
            f'"answers": {answers}, "confidence": {_value(confidence)}, '
            f'"rationale": {_value(rationale)}, "late": {"true" if late else "false"}, '
            f'"submitted_at": {_value(_iso(at))}}}')
    return out


def _labels(conn: Connection, after: str, last: str, status: str | None
            ) -> dict[str, dict[str, Any]]:
    lbl = FinalLabelRow
    q = (sa.select(lbl.task_id, lbl.question_id, lbl.value, lbl.provenance, lbl.confidence)
         .join(ReviewTaskRow, ReviewTaskRow.id == lbl.task_id))
    out: dict[str, dict[str, Any]] = {}
    for lb in conn.execute(_page(q, after, status, last)).all():
        out.setdefault(lb.task_id, {})[lb.question_id] = {
            "value": lb.value, "provenance": lb.provenance, "confidence": lb.confidence}
    return out


def _line(task: _Task, reviews: list[str], labels: dict[str, Any]) -> str:
    # The keys in the export's order, joined as json.dumps joins them; the stored payload
    # and the encoded reviews go in as they are.
    return (f'{{"task_id": {_str(task.id)}, "event_id": {_str(task.event_id)}, '
            f'"status": {_str(task.status)}, "pool": {_value(task.pool)}, '
            f'"severity": {_value(task.severity)}, '
            f'"rubric": {_str(f"{task.rubric_id}@{task.rubric_version}")}, '
            f'"overlap_k": {_value(task.overlap_k)}, "is_gold": {_value(task.is_gold)}, '
            f'"created_at": {_value(_iso(task.created_at))}, '
            f'"resolved_at": {_value(_iso(task.resolved_at))}, "item": {task.payload}, '
            f'"reviews": [{", ".join(reviews)}], "final_labels": {_dumps(labels)}}}')


_Page = tuple[Sequence[_Task], dict[str, list[str]], dict[str, dict[str, Any]]]


def _fetch(conn: Connection, after: str, status: str | None, size: int) -> _Page:
    """The page of tasks after ``after``, with their encoded reviews and their labels."""
    tasks = _tasks(conn, after, status, size)
    if not tasks:
        return tasks, {}, {}
    last = tasks[-1].id
    return tasks, _reviews(conn, after, last, status), _labels(conn, after, last, status)


def _fetch_page(engine: Engine, after: str, status: str | None, size: int) -> _Page:
    """:func:`_fetch` in a read-only transaction of its own, closed before it returns."""
    with read_only_engine(engine).connect() as conn:
        return _fetch(conn, after, status, size)


def iter_lines(session: Session, *, status: str | None = None, page: int = 2000
               ) -> Iterator[str]:
    """One JSON object per task: its state, the event payload, its reviews and labels.

    The next page is read on a helper thread while this one's lines are made, so the
    database's work and the encoding overlap (about a quarter off an export of 10k
    tasks). Pages are read on connections of their own, in short read-only
    transactions (see the module doc), not in ``session``'s transaction: only its
    engine is used, so what it has not committed is not exported.
    """
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with ThreadPoolExecutor(1, thread_name_prefix="hilt-export") as reader:
        current = _fetch_page(engine, "", status, page)
        while current[0]:
            tasks, reviews, labels = current
            upcoming = reader.submit(_fetch_page, engine, tasks[-1].id, status, page)
            try:
                for row in tasks:
                    yield _line(row, reviews.get(row.id, []), labels.get(row.id, {}))
            finally:
                # Also when the consumer stops early: the read in flight finishes before
                # the connection goes back.
                current = upcoming.result()


def exported_events(status: str | None = None) -> sa.Select[str]:
    """The ids of the events an export with ``status`` holds (a task of theirs has it)."""
    t = ReviewTaskRow
    q = sa.select(t.event_id)
    return q.where(t.status == status) if status else q


def check_status(status: str | None, field: str = "status") -> None:
    """A status filter must name a task status: a typo would export nothing, silently."""
    if status is not None and status not in TASK_STATUSES:
        raise InputError(f"unknown task status {status!r}; one of: "
                         + ", ".join(TASK_STATUSES), field=field)


def iter_jsonl(session: Session, *, status: str | None = None) -> Iterator[bytes]:
    """The export as UTF-8 JSON lines, in chunks of a thousand lines each."""
    chunk: list[str] = []
    for line in iter_lines(session, status=status):
        chunk.append(line)
        if len(chunk) >= 1000:
            yield ("\n".join(chunk) + "\n").encode()
            chunk = []
    if chunk:
        yield ("\n".join(chunk) + "\n").encode()


def write_jsonl(session: Session, out: str | Path, *, status: str | None = None) -> int:
    """Write the export to ``out`` atomically (temporary file, then rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    # a private temporary named by pid and host: one a killed run left is swept by the
    # next export to the same file (hilt.staging)
    with PrivateFile(out, ".tmp") as tmp:
        os.chmod(tmp.path, new_file_mode())  # the mode open() gives (the temporary's is 0600)
        with open(tmp.path, "wb") as fh:
            for line in iter_lines(session, status=status):
                fh.write(line.encode() + b"\n")
                count += 1
        os.replace(tmp.path, out)
    return count
