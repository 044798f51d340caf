"""Response bodies of the events router (``/v1/events``); the ingest answer is
:class:`hilt.api.routers.events.IngestOut`."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from hilt.api.schemas import Schema, sometimes
from hilt.events.model import Context, Feedback, Interaction, Response

ERASED = "absent once the event is erased (hilt forget): its content is gone"


class StoredEvent(Schema):
    """An event as stored: the ingested fields (see ``EventBatch``) with its id."""

    id: str
    interaction: Interaction = sometimes(ERASED)
    responses: list[Response] = sometimes(ERASED)
    feedback: list[Feedback] = sometimes(ERASED)
    context: Context = sometimes(ERASED)
    scores: dict[str, float] = sometimes(ERASED)
    created_at: datetime | None = sometimes(f"when the interaction happened; {ERASED}")
    ingested_at: datetime
    erased: bool = Field(description="whether the event's content was erased")


class EventsWithheld(Schema):
    count: int
    event_ids: list[str]
    reason: str


class EventPage(Schema):
    events: list[StoredEvent] = Field(description="ordered by id")
    next_after: str | None = Field(description="the id to pass as `after` for the next "
                                               "page; null when this page was not full")
    withheld: EventsWithheld = sometimes("the events on this page left out because the "
                                         "caller is reviewing them (blind review); only "
                                         "when there are any")
