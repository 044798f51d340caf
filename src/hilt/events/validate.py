"""Turn raw records into validated events, with errors that name file, line and field."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from pydantic import ValidationError

from hilt.errors import InputError
from hilt.events.model import FeedbackEvent

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
        return InputError(f"invalid JSON: {first['ctx'].get('error', first['msg'])}",
                          file=file, line=line)
    if first["type"] == "model_type" and not first["loc"]:
        return InputError("each line must be a JSON object", file=file, line=line)
    return InputError(first["msg"], file=file, line=line, field=_field_path(first["loc"]))


def parse_event(record: dict[str, Any] | str, *, file: str | None = None,
                line: int | None = None) -> FeedbackEvent:
    """Validate one record (a dict, or a JSON text) and fill in its id."""
    try:
        if isinstance(record, str):
            return FeedbackEvent.model_validate_json(record).with_id()
        return FeedbackEvent.model_validate(record).with_id()
    except ValidationError as exc:
        raise validation_error(exc, file=file, line=line) from None


class RecordEvents(Sequence[FeedbackEvent]):
    """Raw records seen as a sequence of events, each validated when it is read.

    Ingest turns every event into a row and is then done with it. A list of a thousand
    validated events keeps some 17 thousand container objects alive through the batch,
    and in a server process with a large heap the full garbage collections they set off
    cost more than the rest of the batch; read one at a time, each event is freed before
    a collection sees it. Validation is deterministic, so a second pass over the records
    (escalation rules reading the new events) sees equal events. Errors name ``file`` and
    the record's index as the line.
    """

    def __init__(self, records: Sequence[dict[str, Any] | str], *, file: str | None
                 ) -> None:
        self._records, self._file = records, file

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[FeedbackEvent]:
        for line, record in enumerate(self._records):
            yield parse_event(record, file=self._file, line=line)

    @overload
    def __getitem__(self, index: int) -> FeedbackEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[FeedbackEvent]: ...

    def __getitem__(self, index: int | slice) -> FeedbackEvent | list[FeedbackEvent]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        line = range(len(self))[index]  # negative indices name the record's own index
        return parse_event(self._records[line], file=self._file, line=line)


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
        except InputError as err:
            if not skip_invalid:
                raise
            raw = None if isinstance(record, InputError) else record
            if isinstance(raw, str):
                raw = _json_or_text(raw)
            out.rejects.append({**err.as_dict(), "record": raw})
            continue
        out.events.append(event)
        out.lines.append(line)
    return out


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
