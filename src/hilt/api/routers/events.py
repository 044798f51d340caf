"""Events API: batch ingest and read-back."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from hilt.access import Principal
from hilt.api.bodies import BODY, content_type_problem
from hilt.api.deps import DB, allow
from hilt.api.schemas import declared
from hilt.api.schemas.events import EventPage, StoredEvent
from hilt.bulk import gc_paused
from hilt.errors import InputError
from hilt.events.ingest import IngestResult, store_events
from hilt.events.validate import EventBatch, parse_batch_json
from hilt.jsonl import TOO_DEEP, too_deep_field, too_deep_path
from hilt.review.blind import events_under_review, refuse_if_reviewing
from hilt.store.tables.core import EventRow

router = APIRouter(prefix="/v1/events", tags=["events"])
# The largest body a batch may have: 10,000 events of about 6 kB each. A larger body is
# refused with 413 before it is read (hilt.web.security.BodyLimitMiddleware); send
# smaller batches.
MAX_BODY_BYTES = 64 * 1024 * 1024

# The body is read as bytes and validated in one pass (hilt.events.validate.
# parse_batch_json), so FastAPI does not document it; the schema is given here instead,
# its nested definitions merged into the components by hilt.api.app.
_BATCH_SCHEMA = EventBatch.model_json_schema(ref_template="#/components/schemas/{model}")
BODY_DEFINITIONS: dict[str, Any] = _BATCH_SCHEMA.pop("$defs", {})
BODY_DEFINITIONS["EventBatch"] = _BATCH_SCHEMA
_BATCH_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/EventBatch"}}}}}


class IngestOut(BaseModel):
    batch_id: str
    received: int
    new: int
    duplicates: int
    escalated: int


_INGESTERS = allow("service", "lead")


async def _body(request: Request, _: Principal = Depends(_INGESTERS)) -> bytes:
    # Depends on the token check: a caller who may not ingest is refused before a byte
    # of the body is read.
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        # Compressed bodies are refused, not decompressed: the 64 MiB limit bounds the
        # bytes received, and a few kilobytes of gzip can expand to gigabytes. Said
        # plainly here, instead of the compressed bytes failing as "invalid JSON".
        raise HTTPException(415, f"Content-Encoding {encoding} is not supported; send "
                                 "the batch as plain JSON (files may be .jsonl.gz: use "
                                 "hilt ingest)")
    # As on every JSON route (hilt.api.bodies), and before the body is read: a form or
    # text body would otherwise fail as "invalid JSON".
    problem = content_type_problem(request.headers.get("content-type"), "the batch")
    if problem is not None:
        raise problem
    return await request.body()


@router.post("", response_model=IngestOut, status_code=200, openapi_extra=_BATCH_BODY)
def post_events(who: Principal = Depends(_INGESTERS), body: bytes = Depends(_body),
                session: Session = DB) -> IngestOut:
    """Ingest a batch ``{"events": [...]}`` (at most 10,000 events and 64 MiB),
    all-or-nothing; a bad event is named by its index (as the line) and field."""
    # A batch's validated events all live until it is stored: the collector would only
    # walk them (see hilt.bulk.gc_paused). They are gone before it runs again, or its
    # first collection would walk them all at once.
    with gc_paused():
        result = _store(body, session, who.actor)
    return IngestOut(batch_id=result.batch_id, received=result.received, new=result.new,
                     duplicates=result.duplicates, escalated=result.escalated)


def _store(body: bytes, session: Session, actor: str) -> IngestResult:
    try:
        events = parse_batch_json(body, file=BODY)
    except InputError as exc:
        _refuse_if_too_deep(body, exc)
        raise
    return store_events(session, events, actor=actor, file=BODY,
                        lines=list(range(len(events))), source_name="http")


def _refuse_if_too_deep(body: bytes, exc: InputError) -> None:
    """A body the validator could not parse because it nests past its limit (the same
    as hilt.jsonl.MAX_DEPTH) is refused saying so, with the event and field that hold
    the deep value, rather than with the parser's "recursion limit exceeded at line 1
    column N". Looked for only after the parser failed, so a valid batch costs nothing
    more."""
    if exc.line is not None or exc.field is not None \
            or not exc.reason.startswith("invalid JSON"):
        return
    path = too_deep_path(body)
    if path is None:
        return
    if len(path) >= 2 and path[0] == "events" and isinstance(path[1], int):
        raise InputError(TOO_DEEP, file=BODY, line=path[1],
                         field=too_deep_field(path[2:]) or None) from None
    raise InputError(TOO_DEEP, file=BODY, field=too_deep_field(path) or None) from None


def _as_event(row: EventRow) -> dict[str, Any]:
    return {"id": row.id, **row.payload, "ingested_at": row.ingested_at.isoformat(),
            "erased": row.erased_at is not None}


# :path: an event id may hold "/" (ids are the caller's own), sent as is or as %2F
@router.get("/{event_id:path}", responses=declared(StoredEvent))
def get_event(event_id: str, session: Session = DB,
              who: Principal = Depends(allow("lead", "adjudicator", "service"))
              ) -> dict[str, Any]:
    """One event. An adjudicator is a person, like a reviewer: they see only content
    whose subject consented to human review and that was not erased (404 otherwise,
    the same answer as for an unknown id).

    Refused (403) to a caller who is reviewing the event under a task that still takes
    reviews (:mod:`hilt.review.blind`): its feedback holds other people's ratings,
    labels, comments and edits of the same item, which their task leaves out."""
    row = session.get(EventRow, event_id)
    if row is None or (who.role == "adjudicator" and not _reviewable(row)):
        raise HTTPException(404, f"event {event_id!r} not found")
    refuse_if_reviewing(session, who.reviewer_id, row.id, f"event {row.id!r}")
    return _as_event(row)


def _reviewable(row: EventRow) -> bool:
    return row.erased_at is None and ",review," in (row.consent_scopes or "")


@router.get("", responses=declared(EventPage))
def list_events(limit: int = Query(50, ge=1, le=1000), after: str | None = None,
                source: str | None = None, session: Session = DB,
                who: Principal = Depends(allow("lead", "service"))) -> dict[str, Any]:
    """Events ordered by id; page with ``after`` = the last id of the previous page.

    The events the caller is reviewing (:mod:`hilt.review.blind`) are left out of
    ``events`` and named under ``withheld`` (``count``, ``event_ids``, ``reason``),
    present only when the page left some out."""
    q = sa.select(EventRow).order_by(EventRow.id).limit(limit)
    if after:
        q = q.where(EventRow.id > after)
    if source:
        q = q.where(EventRow.source == source)
    rows = session.execute(q).scalars().all()
    hidden = events_under_review(session, who.reviewer_id, (r.id for r in rows))
    out: dict[str, Any] = {"events": [_as_event(r) for r in rows if r.id not in hidden],
                           "next_after": rows[-1].id if len(rows) == limit else None}
    if hidden:
        out["withheld"] = {"count": len(hidden), "event_ids": sorted(hidden),
                           "reason": f"{who.reviewer_id!r} is reviewing these items; they "
                                     "are left out until those reviews are submitted "
                                     "(blind review)"}
    return out


