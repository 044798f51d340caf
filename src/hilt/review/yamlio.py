"""YAML documents whose validation errors name the line of the offending field."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ValidationError
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError, SafeConstructor

from hilt.errors import InputError
from hilt.jsonl import MAX_INT_DIGITS, long_int_message

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


# Anchors and aliases stay allowed (a merge key `<<: *base`, one option list shared by
# several questions), but an alias repeats its anchor's whole value wherever it is used,
# and every reader (the line index, the constructor, validation) walks the expanded
# document: nine aliases of nine aliases … of a list grow ninefold per level, so a few
# hundred bytes would expand to billions of values. The expansion is counted while the
# document is composed, before anything walks it.
MAX_ALIAS_VALUES = 100_000
# Nesting deeper than any real document (the composer and the readers recurse per level).
MAX_DEPTH = 64


class ComposeRefused(ComposerError):
    """A document refused while it is composed, with the field it was refused at."""

    def __init__(self, problem: str, mark: Any, field: str | None) -> None:
        super().__init__(None, None, problem, mark)
        self.field = field


class RepeatedKey(ConstructorError):
    """A key repeated in one mapping; the error names that key's field, not whichever
    other field starts on its line (``{id: c1, max: 0, max: 1}``)."""

    def __init__(self, key: Any, problem: str, mark: Any) -> None:
        super().__init__(None, None, problem, mark)
        self.key = key


class ValueRefused(ConstructorError):
    """A scalar of a valid form that is no real value (``2025-02-30``, an integer of too
    many digits): ``node`` is the scalar, so the error names its field even where other
    fields start on the same line (``{strategy: cap, max: 99…}``)."""

    def __init__(self, problem: str, node: yaml.Node) -> None:
        super().__init__(None, None, problem, node.start_mark)
        self.node = node


def _unreadable(node: yaml.Node, exc: ValueError) -> str:
    """Why a scalar could not be read, without repeating thousands of characters of it."""
    tag = node.tag.rsplit(":", 1)[-1]
    text = str(node.value)
    shown = repr(text) if len(text) <= 60 else f"{text[:40]!r}… ({len(text)} characters)"
    return f"cannot read {shown} as {tag}: {exc}"


def int_digits_limit() -> int:
    """The most decimal digits an integer of a YAML document may have: hilt's fixed
    :data:`hilt.jsonl.MAX_INT_DIGITS`, as for JSON Lines, so a file reads the same
    whatever limit the interpreter was started with (``PYTHONINTMAXSTRDIGITS``, 0 for
    none); a lower limit of the interpreter's is kept, since it could not print the
    value."""
    interpreter = sys.get_int_max_str_digits()
    return min(MAX_INT_DIGITS, interpreter) if interpreter else MAX_INT_DIGITS


def _decimal_digits(value: int) -> int:
    """The digits of ``value`` written in decimal, without writing it (``str`` refuses
    an integer past the interpreter's limit)."""
    v = abs(value)
    at_least = int((v.bit_length() - 1) * math.log10(2)) + 1  # the digits of 2**(bits-1)
    return at_least + (v >= 10 ** at_least)  # v < 2**bits: one digit more at most


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping (plain YAML keeps
    the last value and silently drops the earlier one), an alias of a value it is part
    of, aliases that expand the document past :data:`MAX_ALIAS_VALUES` values, and
    nesting deeper than :data:`MAX_DEPTH`."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        # id(node) -> (values in it, levels it nests), aliases expanded
        self._sizes: dict[int, tuple[int, int]] = {}
        self._aliased = 0  # values that aliases add to the document
        self._depth = 0
        self._path: list[Any] = []  # the field being composed, for error messages

    def _refuse(self, problem: str, mark: Any, index: Any) -> ComposeRefused:
        path = [*self._path]
        if isinstance(index, yaml.Node):  # a mapping value: index is its key
            path.append(index.value)
        elif isinstance(index, int):  # a sequence item
            path.append(index)
        return ComposeRefused(problem, mark, ".".join(str(p) for p in path) or None)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            known = self._sizes.get(id(node))
            if known is None:  # its anchor's value is still being composed
                raise self._refuse(f"alias *{event.anchor} is part of the value it refers "
                                   "to (a recursive alias)", event.start_mark, index)
            size, height = known
            if self._depth + height > MAX_DEPTH:
                raise self._refuse(f"alias *{event.anchor} makes values nest more than "
                                   f"{MAX_DEPTH} levels deep", event.start_mark, index)
            self._aliased += size
            if self._aliased > MAX_ALIAS_VALUES:
                raise self._refuse(f"alias *{event.anchor} makes anchors and aliases "
                                   f"expand the document past {MAX_ALIAS_VALUES:,} values; "
                                   "write the repeated parts out instead",
                                   event.start_mark, index)
            return node
        if self._depth >= MAX_DEPTH:
            raise self._refuse(f"values nest more than {MAX_DEPTH} levels deep",
                               self.peek_event().start_mark, index)
        label = index.value if isinstance(index, yaml.Node) else index
        self._depth += 1
        if label is not None:
            self._path.append(label)
        node = super().compose_node(parent, index)
        if label is not None:
            self._path.pop()
        self._depth -= 1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        inner = [self._sizes[id(n)] for n in children]
        self._sizes[id(node)] = (1 + sum(size for size, _ in inner),
                                 1 + max((height for _, height in inner), default=0))
        return node

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
                    raise RepeatedKey(key, f"key {key!r} repeats (first at line "
                                           f"{earlier.start_mark.line + 1})",
                                      key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # A value of a valid form that is no real value (`since: 2025-02-30T00:00:00Z`)
        # makes the constructor raise ValueError, which has no position: give it the
        # node's, so the error names the line and field.
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as exc:
            raise ValueRefused(_unreadable(node, exc), node) from None


def _construct_int(loader: UniqueKeyLoader, node: yaml.ScalarNode) -> int:
    """PyYAML's integer, refused (:class:`ValueRefused`) past :func:`int_digits_limit`
    decimal digits, however it is written: decimal digits are counted before they are
    read (``int`` would stop at the interpreter's limit, or take any length with none);
    hexadecimal (``0x1f``), binary (``0b101``) and octal (``017``) ones are read whatever
    their length (``int`` reads these bases in linear time, with no limit) and their
    value is measured; a base-60 one (``1:30:00``) is refused before it is read when its
    first part and the number of its parts already make it too long (reading it takes
    time quadratic in the parts)."""
    text = str(loader.construct_scalar(node)).replace("_", "")
    body = text[1:] if text[:1] in ("+", "-") else text  # one sign, as PyYAML reads it
    limit = int_digits_limit()
    if not body:
        raise ValueRefused(_unreadable(node, ValueError("not an integer")), node)
    if body != "0" and body[0] == "0":  # 0b, 0x or octal
        value = SafeConstructor.construct_yaml_int(loader, node)
        digits = _decimal_digits(value)
    elif ":" in body:
        parts = body.split(":")
        if all(p.isdigit() for p in parts):
            # value >= first * 60**(parts - 1), and first has len(first) digits
            least = int(len(parts[0]) - 1 + (len(parts) - 1) * math.log10(60)) + 1
            if least > limit:
                raise ValueRefused(long_int_message(least, limit, at_least=True), node)
        value = SafeConstructor.construct_yaml_int(loader, node)
        digits = _decimal_digits(value)
    else:
        digits = sum(c.isdigit() for c in body)
        if digits > limit:
            raise ValueRefused(long_int_message(digits, limit), node)
        value = SafeConstructor.construct_yaml_int(loader, node)
    if digits > limit:
        raise ValueRefused(long_int_message(digits, limit), node)
    return value


UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _line_index(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int],
                paths: dict[int, tuple[Any, ...]]) -> None:
    out[path] = node.start_mark.line + 1
    paths.setdefault(id(node), path)  # an aliased node: the first place it appears
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[path + (key.value,)] = key.start_mark.line + 1
            _line_index(value, path + (key.value,), out, paths)
            out[path + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, path + (i,), out, paths)


def parse_yaml_text(text: str, *, file: str
                    ) -> tuple[Any, Callable[[tuple[Any, ...]], int | None]]:
    """Parse YAML text (repeated keys, recursive aliases, alias expansion past
    :data:`MAX_ALIAS_VALUES` values and nesting past :data:`MAX_DEPTH` levels refused);
    returns the data and ``line_of(loc)``."""
    lines: dict[tuple[Any, ...], int] = {}
    paths: dict[int, tuple[Any, ...]] = {}  # id(node) -> the field it is the value of
    loader = UniqueKeyLoader(text)  # a SafeLoader: no arbitrary objects
    try:
        node = loader.get_single_node()
        if node is not None:
            _line_index(node, (), lines, paths)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        if isinstance(exc, ComposeRefused):  # valid YAML, but not read
            raise InputError(str(exc.problem), file=file, line=line,
                             field=exc.field) from None
        if isinstance(exc, ValueRefused):
            at = paths.get(id(exc.node))
            raise InputError(str(exc.problem), file=file, line=line,
                             field=".".join(str(p) for p in at) if at else
                             _field_at(lines, line)) from None
        raise InputError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=file,
                         line=line, field=_field_at(lines, line, getattr(exc, "key", None))
                         ) from None
    finally:
        loader.dispose()

    def line_of(loc: tuple[Any, ...]) -> int | None:
        loc = tuple(loc)
        while loc:
            if loc in lines:
                return lines[loc]
            loc = loc[:-1]
        return lines.get(())

    return data, line_of


def _field_at(lines: dict[tuple[Any, ...], int], line: int | None, key: Any = None
              ) -> str | None:
    """The deepest field that starts on ``line`` (None when none does); with ``key``,
    the deepest one of that name there (a repeated key)."""
    at = [loc for loc, n in lines.items() if n == line and loc]
    named = [loc for loc in at if key is not None and str(loc[-1]) == str(key)]
    at = named or at
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
