"""YAML documents whose validation errors name the line of the offending field."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ValidationError
from yaml.constructor import ConstructorError

from hilt.errors import InputError

Model = TypeVar("Model", bound=BaseModel)


def _not_boolean(value: Any) -> Any:
    # YAML reads yes/no/on/off/true/false as booleans, and a number field would take
    # `audit_rate: yes` as 1. Otherwise as lax as pydantic: PyYAML reads `1e-2` (no dot)
    # as text, which the number field still converts.
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not a boolean ({str(value).lower()}: YAML "
                         "reads yes/no/on/off/true/false as booleans)")
    return value


def _finite(value: float) -> float:
    # YAML reads .nan and .inf as floats: a threshold of .nan is never crossed
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, not {value}")
    return value


# Number fields of YAML documents (rubrics, rule sets, selection specs, policies).
YamlFloat = Annotated[float, BeforeValidator(_not_boolean)]
YamlInt = Annotated[int, BeforeValidator(_not_boolean)]
# A number field where .nan, .inf and -.inf are refused too.
YamlFiniteFloat = Annotated[float, BeforeValidator(_not_boolean), AfterValidator(_finite)]


class FieldError(ValueError):
    """A validator's error about one field below the model that raised it.

    ``loc`` is relative to that model (e.g. ``("rules", 2, "name")``), so the error names
    the field, and its line, rather than the whole model."""

    def __init__(self, message: str, loc: tuple[Any, ...]) -> None:
        super().__init__(message)
        self.loc = tuple(loc)


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping: plain YAML keeps
    the last value and silently drops the earlier one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False
                          ) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # "<<" merges; explicit keys may override merged ones
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = first.setdefault(key, key_node)
                except TypeError:  # an unhashable key: the base loader reports it
                    continue
                if earlier is not key_node:
                    raise ConstructorError(
                        None, None, f"key {key!r} repeats (first at line "
                                    f"{earlier.start_mark.line + 1})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # A value of a valid form that is no real value (`since: 2025-02-30T00:00:00Z`)
        # makes the constructor raise ValueError, which has no position: give it the
        # node's, so the error names the line and field.
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as exc:
            raise ConstructorError(None, None, f"cannot read {node.value!r} as "
                                   f"{node.tag.rsplit(':', 1)[-1]}: {exc}",
                                   node.start_mark) from None


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


def parse_yaml_text(text: str, *, file: str
                    ) -> tuple[Any, Callable[[tuple[Any, ...]], int | None]]:
    """Parse YAML text (repeated keys refused); returns the data and ``line_of(loc)``."""
    lines: dict[tuple[Any, ...], int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _line_index(node, (), lines)
        data = yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise InputError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=file,
                         line=line, field=_field_at(lines, line)) from None

    def line_of(loc: tuple[Any, ...]) -> int | None:
        loc = tuple(loc)
        while loc:
            if loc in lines:
                return lines[loc]
            loc = loc[:-1]
        return lines.get(())

    return data, line_of


def _field_at(lines: dict[tuple[Any, ...], int], line: int | None) -> str | None:
    """The deepest field that starts on ``line`` (None when none does)."""
    at = [loc for loc, n in lines.items() if n == line and loc]
    return ".".join(str(p) for p in max(at, key=len)) if at else None


def load_yaml(path: str | Path) -> tuple[Any, Callable[[tuple[Any, ...]], int | None]]:
    """Parse a YAML file; returns the data and ``line_of(loc)`` for error locations."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # the line of the first byte that is not UTF-8
        raise InputError("not UTF-8 text", file=str(path),
                         line=raw.count(b"\n", 0, exc.start) + 1) from None
    return parse_yaml_text(text, file=str(path))


def error_location(exc: ValidationError) -> tuple[str, tuple[Any, ...]]:
    """The first error's message and location (a :class:`FieldError` points below the
    model that raised it)."""
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not str(p).startswith("function-"))
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        loc += cause.loc
    return str(err["msg"]).removeprefix("Value error, "), loc


def validate_yaml(model: type[Model], data: Any, *, file: str,
                  line_of: Callable[[tuple[Any, ...]], int | None] | None = None) -> Model:
    """Validate ``data`` as ``model``; the first error names file, line and field."""
    if not isinstance(data, dict):
        raise InputError("the document must be a mapping", file=file, line=1)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, loc = error_location(exc)
        field = ".".join(str(p) for p in loc) or None
        raise InputError(message, file=file, line=line_of(loc) if line_of else None,
                         field=field) from None
