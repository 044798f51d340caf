"""Turn raw records into validated events, with errors that name file, line and field."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from hilt.errors import InputError
from hilt.events.model import FeedbackEvent


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif str(item) in {"rating", "thumbs", "flag", "preference", "label", "text", "edit"} \
                and parts and parts[-1].startswith("["):
            continue  # pydantic's discriminator tag is not a field the user wrote
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(record)"


def validation_error(exc: ValidationError, *, file: str | None, line: int | None
                     ) -> InputError:
    first = exc.errors()[0]
    return InputError(first["msg"], file=file, line=line, field=_field_path(first["loc"]))


def parse_event(record: dict[str, Any], *, file: str | None = None,
                line: int | None = None) -> FeedbackEvent:
    try:
        return FeedbackEvent.model_validate(record).with_id()
    except ValidationError as exc:
        raise validation_error(exc, file=file, line=line) from None


@dataclass
class Parsed:
    events: list[FeedbackEvent] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)


def parse_all(records: Iterable[tuple[int, dict[str, Any]]], *, file: str | None,
              skip_invalid: bool = False) -> Parsed:
    """Validate every record. Without ``skip_invalid`` the first bad record raises."""
    out = Parsed()
    for line, record in records:
        try:
            event = parse_event(record, file=file, line=line)
        except InputError as err:
            if not skip_invalid:
                raise
            out.rejects.append({**err.as_dict(), "record": record})
            continue
        out.events.append(event)
        out.lines.append(line)
    return out
