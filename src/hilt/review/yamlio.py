"""YAML documents whose validation errors name the line of the offending field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hilt.errors import InputError

Model = TypeVar("Model", bound=BaseModel)


def _line_index(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]
                ) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[path + (key.value,)] = key.start_mark.line + 1
            _line_index(value, path + (key.value,), out)
            out[path + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, path + (i,), out)


def load_yaml(path: str | Path) -> tuple[Any, Callable[[tuple[Any, ...]], int | None]]:
    """Parse a YAML file; returns the data and ``line_of(loc)`` for error locations."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=str(path)) from None
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=str(path),
                         line=mark.line + 1 if mark else None) from None
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _line_index(node, (), lines)

    def line_of(loc: tuple[Any, ...]) -> int | None:
        loc = tuple(loc)
        while loc:
            if loc in lines:
                return lines[loc]
            loc = loc[:-1]
        return lines.get(())

    return data, line_of


def validate_yaml(model: type[Model], data: Any, *, file: str,
                  line_of: Callable[[tuple[Any, ...]], int | None] | None = None) -> Model:
    """Validate ``data`` as ``model``; the first error names file, line and field."""
    if not isinstance(data, dict):
        raise InputError("the document must be a mapping", file=file, line=1)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not str(p).startswith("function-"))
        field = ".".join(str(p) for p in loc) or None
        message = str(err["msg"]).removeprefix("Value error, ")
        raise InputError(message, file=file, line=line_of(loc) if line_of else None,
                         field=field) from None
