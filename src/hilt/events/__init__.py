"""The feedback event (x, y, h): its model, validation and ingest."""

from hilt.events.model import (
    CONSENT_SCOPES,
    Context,
    DecoderSettings,
    FeedbackEvent,
    Interaction,
    Message,
    Response,
    event_json_schema,
)

__all__ = [
    "CONSENT_SCOPES",
    "Context",
    "DecoderSettings",
    "FeedbackEvent",
    "Interaction",
    "Message",
    "Response",
    "event_json_schema",
]
