"""Events API: batch ingest and read-back."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from hilt.access import Principal
from hilt.api.deps import DB, allow
from hilt.events.ingest import store_events
from hilt.events.validate import RecordEvents
from hilt.store.tables.core import EventRow

router = APIRouter(prefix="/v1/events", tags=["events"])
MAX_BATCH = 10_000


class EventBatch(BaseModel):
    events: list[dict[str, Any]] = Field(
        description="feedback events (see `hilt schema event`)", max_length=MAX_BATCH)


class IngestOut(BaseModel):
    batch_id: str
    received: int
    new: int
    duplicates: int
    escalated: int


@router.post("", response_model=IngestOut, status_code=200)
def post_events(batch: EventBatch, session: Session = DB,
                who: Principal = Depends(allow("service", "lead"))) -> IngestOut:
    """Ingest a batch, all-or-nothing; a bad event is named by its index and field."""
    events = RecordEvents(batch.events, file="request")  # validated as ingest reads them
    result = store_events(session, events, actor=who.actor, file="request",
                          lines=list(range(len(events))), source_name="http")
    return IngestOut(batch_id=result.batch_id, received=result.received, new=result.new,
                     duplicates=result.duplicates, escalated=result.escalated)


def _as_event(row: EventRow) -> dict[str, Any]:
    return {"id": row.id, **row.payload, "ingested_at": row.ingested_at.isoformat(),
            "erased": row.erased_at is not None}


@router.get("/{event_id}")
def get_event(event_id: str, session: Session = DB,
              _: Principal = Depends(allow("lead", "adjudicator", "service"))
              ) -> dict[str, Any]:
    row = session.get(EventRow, event_id)
    if row is None:
        raise HTTPException(404, f"event {event_id!r} not found")
    return _as_event(row)


@router.get("")
def list_events(limit: int = Query(50, ge=1, le=1000), after: str | None = None,
                source: str | None = None, session: Session = DB,
                _: Principal = Depends(allow("lead", "service"))) -> dict[str, Any]:
    """Events ordered by id; page with ``after`` = the last id of the previous page."""
    q = sa.select(EventRow).order_by(EventRow.id).limit(limit)
    if after:
        q = q.where(EventRow.id > after)
    if source:
        q = q.where(EventRow.source == source)
    rows = session.execute(q).scalars().all()
    return {"events": [_as_event(r) for r in rows],
            "next_after": rows[-1].id if len(rows) == limit else None}


