"""Turn raw records into validated events, with errors that name file, line and field."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from hilt.errors import InputError
from hilt.events.model import FeedbackEvent
from hilt.events.readers import BadRecord
from hilt.events.text import unstorable_text_error
from hilt.jsonl import field_path, repeated_key_path, too_deep_path

_FEEDBACK_TAGS = {"rating", "thumbs", "flag", "preference", "label", "text", "edit"}


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif (i == 2 and loc[0] == "feedback" and isinstance(loc[1], int)
              and item in _FEEDBACK_TAGS):
            continue  # pydantic's discriminator tag is not a field the user wrote
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(record)"


def validation_error(exc: ValidationError, *, file: str | None, line: int | None
                     ) -> InputError:
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        reason = str(first["ctx"].get("error", first["msg"]))
        if reason.startswith("EOF while parsing") and line is not None:
            # pretty-printed JSON: the event goes on over the next lines of the file
            reason += " (each event must be on one line of its own)"
        return InputError(f"invalid JSON: {reason}", file=file, line=line)
    if first["type"] == "model_type" and not first["loc"]:
        return InputError("each line must be a JSON object", file=file, line=line)
    return InputError(_message(first), file=file, line=line, field=_error_field(first))


def _message(error: Any) -> str:
    """The error's message without pydantic's "Value error, " before hilt's own."""
    return str(error["msg"]).removeprefix("Value error, ")


def _error_field(error: Any, skip: int = 0) -> str:
    """The field an error is about; a free-form object's error (FreeForm) names the
    value inside it in ``ctx['path']``, and so does a check across the whole event (a
    feedback item's response index) the field it found wrong."""
    loc = tuple(error["loc"])[skip:]
    inner = (error.get("ctx") or {}).get("path")
    if not (isinstance(inner, str) and inner):
        return _field_path(loc)
    if not loc:
        return inner
    field = _field_path(loc)
    return field + (inner if inner.startswith("[") else "." + inner)


def _json_keys(value: dict[str, Any] | list[Any]) -> int:
    """The keys of the objects in a JSON value."""
    items = value.values() if isinstance(value, dict) else value
    nested = sum(_json_keys(item) for item in items if isinstance(item, dict | list))
    return (len(value) if isinstance(value, dict) else 0) + nested


def _keys_given(event: FeedbackEvent) -> int:
    """How many keys the JSON text held that ``event`` was validated from, a repeated
    key counted once: the fields given to each model and the keys of free-form objects.

    Written out for the event's shape, as the generic walk over models costs three
    times as much. A model added to the event and not counted here only makes the
    count short, which sends every text to the slower look for repeated keys (a test
    checks that a fully populated event needs none)."""
    given = event.model_fields_set
    n = len(given) + len(event.interaction.model_fields_set) + len(event.scores)
    for message in event.interaction.messages or ():
        n += len(message.model_fields_set)
    for response in event.responses:
        n += len(response.model_fields_set)
    for item in event.feedback:
        n += len(item.model_fields_set)
    if "context" in given:
        context = event.context
        n += len(context.model_fields_set)
        if context.metadata:
            n += _json_keys(context.metadata)
        if "decoder" in context.model_fields_set:
            decoder = context.decoder
            n += len(decoder.model_fields_set)
            if decoder.extra:
                n += _json_keys(decoder.extra)
    return n


def _no_key_repeated(text: str | bytes, keys: int) -> bool:
    """Whether JSON ``text``, validated into objects holding ``keys`` keys in all, is
    sure to hold no key twice in one object (where it is not sure, the caller parses the
    text again to look).

    ``json`` and pydantic keep the last of repeated keys, so each key repeated makes
    the text hold more keys than the result. A key ends in ``":`` unless white space
    stands before its colon; ``":`` anywhere else (``\\":`` in a string, a string that
    starts with a colon) only adds to the count. So with no white space before a colon,
    as many ``":`` as keys proves that no key was lost. Tabs and line breaks can stand
    only between tokens (in a string they must be escaped), so looking for each is one
    fast scan. This costs a few percent of the validation, where parsing the text again
    with a hook for repeated keys would cost as much as the validation itself.
    """
    if isinstance(text, bytes):
        if b"\t" in text or b"\r" in text or b"\n" in text or b" :" in text:
            return False
        return text.count(b'":') == keys
    if "\t" in text or "\r" in text or "\n" in text or " :" in text:
        return False
    return text.count('":') == keys


def _refuse_repeated_key(text: str | bytes, *, file: str | None, line: int | None
                         ) -> None:
    path = repeated_key_path(text)
    if path is not None:
        raise InputError(f"key {path[-1]!r} appears more than once in the object",
                         file=file, line=line, field=field_path(path))


def parse_event(record: dict[str, Any] | str, *, file: str | None = None,
                line: int | None = None) -> FeedbackEvent:
    """Validate one record (a dict, or a JSON text) and fill in its id.

    A JSON text is held to JSON's types, not converted ("no" is no boolean, "4" no
    number, 1.0 no index), and may not repeat a key in an object (its last value would
    silently win). A dict (a CSV or Parquet row) is converted: a CSV cell is always
    text."""
    try:
        if isinstance(record, str):
            event = FeedbackEvent.model_validate_json(record, strict=True)
            if not _no_key_repeated(record, _keys_given(event)):
                _refuse_repeated_key(record, file=file, line=line)
            return event.with_id()
        event = FeedbackEvent.model_validate(record)
        try:
            return event.with_id()
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 form to hash
            _refuse_unstorable_text(record, file=file, line=line)
            raise
    except ValidationError as exc:
        if isinstance(record, str):  # a repeated key may be what broke it
            _refuse_repeated_key(record, file=file, line=line)
        raise validation_error(exc, file=file, line=line) from None


def _refuse_unstorable_text(value: Any, *, file: str | None, line: int | None) -> None:
    error = unstorable_text_error(value, file=file, line=line)
    if error is not None:
        raise error


MAX_BATCH = 10_000  # events in one HTTP batch


class EventBatch(BaseModel):
    """The body of ``POST /v1/events``."""

    events: list[FeedbackEvent] = Field(
        max_length=MAX_BATCH, description="feedback events (see `hilt schema event`)")


def parse_batch_json(body: bytes | str, *, file: str | None) -> list[FeedbackEvent]:
    """A JSON body ``{"events": [...]}`` validated in one pass over the bytes, each event
    with its id filled in. Errors name ``file`` and the event's index as the line.

    One pass of the validator over the raw body costs about half of decoding it to
    Python objects first and validating those again, most of an HTTP batch's CPU time.
    """
    try:
        batch = EventBatch.model_validate_json(body, strict=True)
        keys = 1 + sum(_keys_given(event) for event in batch.events)  # 1: "events"
        if not _no_key_repeated(body, keys):
            _refuse_repeated_batch_key(body, file=file)
    except ValidationError as exc:
        _refuse_repeated_batch_key(body, file=file)  # a repeated key may be what broke it
        first = exc.errors()[0]
        loc = first["loc"]
        if first["type"] == "json_invalid":
            raise validation_error(exc, file=file, line=None) from None
        if len(loc) >= 2 and loc[0] == "events" and isinstance(loc[1], int):
            if len(loc) == 2 and first["type"] == "model_type":
                raise InputError("each event must be a JSON object", file=file,
                                 line=loc[1]) from None
            raise InputError(_message(first), file=file, line=loc[1],
                             field=_error_field(first, skip=2)) from None
        if not loc:
            raise InputError('the body must be a JSON object {"events": [...]}',
                             file=file) from None
        raise InputError(_message(first), file=file, field=_error_field(first)) from None
    return [e.with_id() for e in batch.events]


def _refuse_repeated_batch_key(body: bytes | str, *, file: str | None) -> None:
    """A key repeated in the body: the event's index as the line, and the field."""
    path = repeated_key_path(body)
    if path is None:
        return
    message = f"key {path[-1]!r} appears more than once in the object"
    if len(path) >= 3 and path[0] == "events" and isinstance(path[1], int):
        raise InputError(message, file=file, line=path[1], field=field_path(path[2:]))
    raise InputError(message, file=file, field=field_path(path))


@dataclass
class Parsed:
    events: list[FeedbackEvent] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)


def parse_all(records: Iterable[tuple[int, dict[str, Any] | str | InputError]], *,
              file: str | None,
              skip_invalid: bool = False) -> Parsed:
    """Validate every record. Without ``skip_invalid`` the first bad record raises."""
    out = Parsed()
    for line, record in records:
        try:
            if isinstance(record, InputError):
                raise record
            event = parse_event(record, file=file, line=line)
            # Text no store can hold is a bad line like any other (a rejected line
            # with --skip-invalid, not the end of the run). JSON text can spell a NUL
            # (\u0000) but no lone surrogate (the parser refuses one), and the escape
            # is rare, so only such a text is walked; the readers check CSV and
            # Parquet rows (hilt.events.readers).
            if isinstance(record, str) and "\\u0000" in record:
                _refuse_unstorable_text(record, file=file, line=line)
        except InputError as err:
            if not skip_invalid:
                raise
            # the rejects keep the line itself: what could not be read as an event is
            # what the user has to correct
            raw = (record.raw if isinstance(record, BadRecord)
                   else None if isinstance(record, InputError) else record)
            if isinstance(raw, str):
                raw = _json_or_text(raw)
            out.rejects.append({**err.as_dict(), "record": raw})
            continue
        out.events.append(event)
        out.lines.append(line)
    return out


def _json_or_text(text: str) -> Any:
    if too_deep_path(text) is not None:  # json.loads would stop with a RecursionError
        return text
    try:
        return json.loads(text)
    except ValueError:  # not JSON, or an integer past json's limit on digits
        return text
