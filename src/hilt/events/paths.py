"""Dotted paths into a feedback event (``context.source``, ``scores.guardrail``,
``context.metadata.region``), as escalation rules name the values they read.

:func:`path_kind` says what kind of value a path reaches, or why no event has a value
there: a misspelt field (``context.sorce``), a path into a list (``responses.0.text``:
rules read values by name, not by position) or below a single value. A rule on such a
path would otherwise hold for no event, or with ``exists: false`` for every one, without
a word.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

# what a path reaches: "any" below a free-form object (metadata, decoder extras), whose
# values no schema fixes
Kind = Literal["number", "text", "time", "boolean", "list", "object", "any"]


def _strip_optional(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    return annotation


def _node(annotation: Any) -> Any:
    """A model class, ``("dict", value node)``, or the kind of a value."""
    annotation = _strip_optional(annotation)
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if origin is dict:
        value = typing.get_args(annotation)[1]
        return ("dict", "any" if value is Any else _node(value))
    if origin is list:
        return "list"
    if annotation is bool:
        return "boolean"
    if annotation in (int, float):
        return "number"
    if annotation is str or origin is Literal:
        return "text"
    if annotation is datetime:
        return "time"
    return "any"


def path_kind(path: str) -> Kind:
    """The kind of value ``path`` reaches in a feedback event; ``ValueError`` saying why
    when no event can have a value there."""
    from hilt.events.model import FeedbackEvent

    node: Any = FeedbackEvent
    walked: list[str] = []
    for part in path.split("."):
        if not part:
            raise ValueError(f"{path!r} has an empty part; write the field names "
                             "between dots (context.source)")
        if node == "any":
            walked.append(part)
            continue
        here = ".".join(walked) or "the event"
        if isinstance(node, tuple):  # a dict: any key, values of one kind
            node = node[1]
        elif isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(part)
            if field is None:
                raise ValueError(f"no event has a field {'.'.join([*walked, part])!r}; "
                                 f"the fields of {here} are "
                                 f"{', '.join(node.model_fields)}")
            node = _node(field.annotation)
        else:
            reason = ("a list: rules read values by name, not by position (match its "
                      "text with keywords or regex)" if node == "list" else
                      f"a single value ({node})")
            raise ValueError(f"{here!r} holds {reason}; a path cannot go below it")
        walked.append(part)
    if isinstance(node, type) and issubclass(node, BaseModel):
        raise ValueError(f"{path!r} is an object that every event has; name one of its "
                         f"fields: {', '.join(node.model_fields)}")
    if isinstance(node, tuple):
        return "object"
    return typing.cast(Kind, node)
