"""Re-checking stored events against their content hashes (``hilt audit verify --events``).

The audit chain (:mod:`hilt.store.audit`) covers the log's own entries; this module
covers the events' payloads.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.canonical import sha256_hex
from hilt.store.audit import _is_pg
from hilt.store.tables.core import AuditPendingRow, AuditRow

# Events: the audit chain covers the log's own entries, not the events' payloads; each
# event row carries the sha256 of its payload text as ingested (``content_hash``,
# :func:`hilt.events.ingest.event_row`). Erasure (:func:`hilt.data.forget.erase_subject`)
# legitimately replaces a payload with ``{"erased": true}`` and sets ``erased_at``,
# keeping the hash; it names every event it erased in its ``subject.forget`` entry.
ERASED_PAYLOAD = {"erased": True}
FORGET_ACTION = "subject.forget"
# How many of the events that do not match are named.
EVENTS_NAMED = 5
# On PostgreSQL the payload is JSONB, which keeps the content but not the key order of
# the text that was hashed; the orders of free-form objects (scores, metadata) tried
# per event before it is counted as one whose text cannot be rebuilt.
ORDERS_TRIED = 720


@dataclass
class EventsResult:
    """What :func:`verify_events` found: events checked, erased ones accepted, and the
    first :data:`EVENTS_NAMED` that do not match (``bad`` counts them all)."""

    checked: int = 0
    erased: int = 0
    bad: int = 0
    unverified: int = 0
    first_bad: list[dict[str, Any]] | None = None

    @property
    def ok(self) -> bool:
        return self.bad == 0

    def add_bad(self, event_id: str, problem: str, **detail: Any) -> None:
        self.bad += 1
        if self.first_bad is None:
            self.first_bad = []
        if len(self.first_bad) < EVENTS_NAMED:
            self.first_bad.append({"id": event_id, "hash": "content_hash",
                                   "problem": problem, **detail})

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "erased": self.erased,
                "bad": self.bad, "unverified": self.unverified,
                "first_bad": self.first_bad or []}


def _forgotten_ids(session: Session) -> set[str]:
    """Every event id a ``subject.forget`` entry names (the chain's and, on PostgreSQL,
    those not sealed yet)."""
    tables: list[Any] = [AuditRow] + ([AuditPendingRow] if _is_pg(session) else [])
    ids: set[str] = set()
    for table in tables:
        for payload in session.execute(sa.select(table.payload)
                                       .where(table.action == FORGET_ACTION)).scalars():
            if isinstance(payload, dict):
                ids.update(str(i) for i in payload.get("event_ids") or [])
    return ids


def _dict_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of the objects with two keys or more inside a JSON value."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        if len(value) > 1:
            found.append(path)
        for key, item in value.items():
            found += _dict_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _dict_paths(item, (*path, index))
    return found


def _reordered(value: Any, orders: dict[tuple[Any, ...], tuple[str, ...]],
               path: tuple[Any, ...] = ()) -> Any:
    if isinstance(value, dict):
        keys = orders.get(path, tuple(value))
        return {k: _reordered(value[k], orders, (*path, k)) for k in keys}
    if isinstance(value, list):
        return [_reordered(item, orders, (*path, i)) for i, item in enumerate(value)]
    return value


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _rebuilt_matches(text: str, stored: str) -> bool | None:
    """Whether some key order of the JSONB payload ``text``, dumped as ingest dumps an
    event, hashes to ``stored``; None when the orders to try exceed ORDERS_TRIED.

    The event model puts its own fields in their order; only free-form objects keep
    the order they are given in, so only those are permuted (an object whose reversal
    changes the dump)."""
    from pydantic import ValidationError

    from hilt.events.model import FeedbackEvent

    def digest(value: Any) -> str:
        return sha256_hex(FeedbackEvent.model_validate(value).model_dump_json(exclude={"id"}))

    try:
        value = json.loads(text)
        base = digest(value)
        if base == stored:
            return True
        free = [p for p in _dict_paths(value)
                if digest(_reordered(value, {p: tuple(reversed(list(_at(value, p))))}))
                != base]
    except (ValueError, ValidationError, TypeError):
        return False  # not an event any more: edited
    if math.prod(math.factorial(len(_at(value, p))) for p in free) > ORDERS_TRIED:
        return None
    for combo in itertools.product(*(itertools.permutations(_at(value, p)) for p in free)):
        if digest(_reordered(value, dict(zip(free, combo, strict=True)))) == stored:
            return True
    return False


def verify_events(session: Session, batch: int = 5000) -> EventsResult:
    """Hash every stored event's payload again and compare it with its ``content_hash``,
    streaming ``batch`` rows at a time in id order (never all of them at once).

    An erased event is accepted when its payload is exactly ``{"erased": true}`` and a
    ``subject.forget`` entry of the audit log names it (the log's own chain is
    :func:`verify`'s to check); one whose payload was replaced otherwise, or marked
    erased with no erasure recorded, is reported. SQLite keeps the payload's text as
    ingested, which is hashed as stored bytes (a damaged byte that is no longer UTF-8
    is a mismatch, not an error). PostgreSQL keeps JSONB, so the text is rebuilt: the
    event dumped as ingest dumps it, free-form objects tried in each key order up to
    :data:`ORDERS_TRIED` orders; an event with more is counted ``unverified``."""
    from hilt.store.tables.core import EventRow

    pg = _is_pg(session)
    # the stored text as bytes on SQLite (a damaged byte stays a byte); JSONB's text on
    # PostgreSQL
    payload = sa.cast(EventRow.payload, sa.Text if pg else sa.LargeBinary)
    query = sa.select(EventRow.id, EventRow.content_hash, EventRow.erased_at, payload)
    result = EventsResult()
    forgotten: set[str] | None = None
    last: str | None = None
    while True:
        page = query if last is None else query.where(EventRow.id > last)
        rows = session.execute(page.order_by(EventRow.id).limit(batch)).all()
        if not rows:
            return result
        for row in rows:
            event_id, stored, erased_at = row[0], row[1], row[2]
            raw: Any = row[3]
            result.checked += 1
            if erased_at is not None:
                if forgotten is None:
                    forgotten = _forgotten_ids(session)
                try:
                    content = json.loads(raw)
                except (ValueError, TypeError):
                    content = None
                if event_id not in forgotten:
                    result.add_bad(event_id, "marked erased, but no subject.forget entry "
                                   "of the audit log names it")
                elif content != ERASED_PAYLOAD:
                    result.add_bad(event_id, "erased, but its payload is not the erasure "
                                   "marker {\"erased\": true}")
                else:
                    result.erased += 1
                continue
            if raw is None or stored is None:
                result.add_bad(event_id, "payload or content_hash missing")
                continue
            if not pg:
                computed = sha256_hex(bytes(raw))
                if computed != stored:
                    result.add_bad(event_id, "payload does not match its content_hash",
                                   stored=stored, computed=computed)
                continue
            matches = _rebuilt_matches(raw, stored)
            if matches is None:
                result.unverified += 1
            elif not matches:
                result.add_bad(event_id, "payload does not match its content_hash",
                               stored=stored)
        last = rows[-1][0]
