"""JSON-lines input (training files, suite and response files): plain or gzipped, one
object per line, errors that name the file and the line.

Lines are read as bytes and decoded one at a time, so a byte that is not UTF-8 is
reported on its own line rather than as a traceback from a decoder somewhere in a
buffered block.

A key repeated in one object, and a number that is not finite (``NaN``, ``Infinity``,
or a literal too large for a float such as ``1e999``), are refused with the line and the
field: ``json`` would keep the last of the repeated values, and read the numbers as
values that cannot be written back as JSON.

An integer literal of more than :data:`MAX_INT_DIGITS` digits is refused with the line
and the field, without echoing its digits: ``json`` would stop with Python's own
``ValueError`` on its limit for turning text into an integer (``sys.int_info``), a
traceback that names no line.

Arrays and objects may nest at most :data:`MAX_DEPTH` levels inside the outermost one,
as many as pydantic's JSON parser takes: deeper text is refused naming the field where
the limit is passed, before any parser recurses into it (``json`` would otherwise stop
with a ``RecursionError`` somewhere near a thousand levels, depending on the stack).
"""

from __future__ import annotations

import gzip
import json
import math
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hilt.errors import InputError


class RepeatedKey(ValueError):
    """A key given twice in one JSON object."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _NonFinite(ValueError):
    pass


class _LongInt(ValueError):
    def __init__(self, digits: int) -> None:
        super().__init__(digits)
        self.digits = digits


# Python's default limit on the digits of an integer read from text: a fixed number, so a
# file reads the same whatever limit the interpreter was started with
# (PYTHONINTMAXSTRDIGITS); a lower interpreter limit is refused the same way.
MAX_INT_DIGITS = 4300


def long_int_message(digits: int, limit: int = MAX_INT_DIGITS, *,
                     at_least: bool = False) -> str:
    """Why an integer of ``digits`` digits (``at_least``: of no fewer) is refused, the
    digits themselves not repeated."""
    return (f"an integer of {'at least ' if at_least else ''}{digits} digits is too long "
            f"(at most {limit} digits)")


def finite_number(value: Any, *, file: str, line: int, field: str) -> float | None:
    """A JSON number read as a finite float (None when absent). A boolean or text is
    refused; so are NaN and Infinity (JSON's extension) and an integer too long for a
    float, named by its digit count rather than its digits."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError("must be a number", file=file, line=line, field=field)
    try:
        number = float(value)
    except OverflowError:
        raise InputError(f"must be a finite number; an integer of {len(str(abs(value)))} "
                         "digits is past the range of a float", file=file, line=line,
                         field=field) from None
    if not math.isfinite(number):
        raise InputError(f"must be a finite number, got {number}", file=file, line=line,
                         field=field)
    return number


# Levels of arrays and objects allowed inside the outermost one: pydantic's parser (which
# validates events, HTTP batches and most bodies) refuses the 202nd level and allows the
# 201st, so every JSON input of hilt has the same limit (a test holds them together).
MAX_DEPTH = 200
TOO_DEEP = f"nested too deeply (limit {MAX_DEPTH} levels of arrays and objects)"

# The tokens that open, close or separate a level, and strings (a key when a colon follows)
_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?|[\[\]{},]')


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for a JSON object whose keys are all distinct: with a
    repeated key ``json`` would keep the last value silently, so ``"judgment": "refuse",
    "judgment": "comply"`` would read as a compliance nobody can see in the file."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RepeatedKey(key)
            seen.add(key)
    return obj


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # a literal too large for a float: 1e999
        raise _NonFinite(text)
    return value


def _refuse_constant(text: str) -> float:  # NaN, Infinity, -Infinity
    raise _NonFinite(text)


def _bounded_int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise _LongInt(digits)
    try:
        return int(text)
    except ValueError:  # the interpreter was started with a lower limit
        raise _LongInt(digits) from None


_DECODER = json.JSONDecoder(object_pairs_hook=unique_keys, parse_float=_finite_float,
                            parse_constant=_refuse_constant, parse_int=_bounded_int)


class _Long:
    """Stands for an integer too long to read while :func:`_long_int_path` looks for it."""


def _long_int_path(text: str) -> tuple[str | int, ...] | None:
    def mark(literal: str) -> Any:
        return _Long() if len(literal) - literal.startswith("-") > MAX_INT_DIGITS else 0

    def find(value: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
        if isinstance(value, _Long):
            return path
        items: list[tuple[str | int, Any]] = (
            list(value.items()) if isinstance(value, dict)
            else list(enumerate(value)) if isinstance(value, list) else [])
        for key, item in items:
            found = find(item, (*path, key))
            if found is not None:
                return found
        return None

    try:  # nesting was bounded by MAX_DEPTH before the first parse, so find() may recurse
        return find(json.loads(text, parse_int=mark, parse_float=lambda _: 0.0,
                               parse_constant=lambda _: 0.0), ())
    except ValueError:
        return None


def field_path(parts: tuple[str | int, ...]) -> str:
    """``("a", 0, "b")`` → ``a[0].b``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def too_deep_path(text: str | bytes, limit: int = MAX_DEPTH
                  ) -> tuple[str | int, ...] | None:
    """The path of the first array or object of the JSON ``text`` nested more than
    ``limit`` levels inside the outermost one; None when there is none.

    A scan of the text's brackets, keys and commas that never recurses, so that it
    measures any depth; the text need not be valid JSON. Text with no more brackets than
    the limit allows is answered without a scan."""
    if isinstance(text, bytes):
        if text.count(b"[") + text.count(b"{") <= limit + 1:
            return None
        text = text.decode("utf-8", "replace")
    elif text.count("[") + text.count("{") <= limit + 1:
        return None
    # one frame per open level: [key (object) or index (array), is an object]
    frames: list[list[Any]] = []
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            if len(frames) > limit:
                return tuple(key for key, _ in frames if key is not None)
            frames.append([None, True] if token == "{" else [0, False])
        elif token in ("]", "}"):
            if frames:
                frames.pop()
        elif token == ",":
            if frames and not frames[-1][1]:
                frames[-1][0] += 1
        elif match.group(1) is not None and frames and frames[-1][1]:
            key = token[:token.rindex(":")].rstrip()
            try:
                frames[-1][0] = json.loads(key)
            except ValueError:
                frames[-1][0] = key[1:-1]
    return None


def too_deep_field(parts: tuple[str | int, ...], keep: int = 12) -> str:
    """:func:`field_path` of a path past the depth limit, cut after ``keep`` parts: the
    field that holds the deep value is what says where it is, not two hundred ``[0]``."""
    return field_path(parts) if len(parts) <= keep else field_path(parts[:keep]) + "…"


def non_finite_path(value: Any, path: tuple[str | int, ...] = ()
                    ) -> tuple[str | int, ...] | None:
    """The path of the first float in ``value`` that is NaN or infinite; None when all
    are finite (``()`` when ``value`` itself is one)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            found = non_finite_path(item, (*path, str(key)))
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = non_finite_path(item, (*path, i))
            if found is not None:
                return found
    return None


def repeated_key_path(text: str | bytes) -> tuple[str | int, ...] | None:
    """The path of the first key repeated in an object of the JSON ``text`` (None when
    no key repeats, the text is not JSON, or it nests too deeply for ``json`` to read:
    its callers' parsers refuse such text with their own message).

    Called after a parser refused the text or could not rule out a repeated key, so it
    adds no scan for the depth limit: ``json``'s own recursion check stands in for it,
    and the walk below keeps a stack of its own, so no depth ``json`` reads can make it
    recurse."""

    class Marked(dict[str, Any]):
        repeated: str | None = None

    any_repeated = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal any_repeated
        obj = Marked(pairs)
        if len(obj) != len(pairs):
            any_repeated = True
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen and obj.repeated is None:
                    obj.repeated = key
                seen.add(key)
        return obj

    def find(root: Any) -> tuple[str | int, ...] | None:
        # depth first, in document order, without recursion
        stack: list[tuple[Any, tuple[str | int, ...]]] = [(root, ())]
        while stack:
            value, path = stack.pop()
            if isinstance(value, Marked) and value.repeated is not None:
                return (*path, value.repeated)
            items: list[tuple[str | int, Any]] = (
                list(value.items()) if isinstance(value, dict)
                else list(enumerate(value)) if isinstance(value, list) else [])
            stack.extend((item, (*path, key)) for key, item in reversed(items)
                         if isinstance(item, dict | list))
        return None

    try:
        parsed = json.loads(text, object_pairs_hook=hook)
    except (ValueError, RecursionError):
        return None
    return find(parsed) if any_repeated else None  # most texts: no walk at all


def loads_strict(text: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> Any:
    """``json.loads`` that refuses a key repeated in an object, a number that is not
    finite, an integer of more than :data:`MAX_INT_DIGITS` digits and nesting past
    :data:`MAX_DEPTH`, naming ``file``, ``line`` and the field (below ``field`` when
    given)."""

    def where(parts: tuple[str | int, ...] | None,
              spell: Callable[[tuple[str | int, ...]], str] = field_path) -> str | None:
        inner = spell(parts) if parts else ""
        if field and inner:
            return f"{field}{'' if inner.startswith('[') else '.'}{inner}"
        return field or inner or None

    deep = too_deep_path(text)
    if deep is not None:
        raise InputError(TOO_DEEP, file=file, line=line, field=where(deep, too_deep_field))
    try:
        return _DECODER.decode(text)
    except RepeatedKey as exc:
        raise InputError(f"key {exc.key!r} appears more than once in the object",
                         file=file, line=line,
                         field=where(repeated_key_path(text) or (exc.key,))) from None
    except _NonFinite as exc:
        try:
            parts = non_finite_path(json.loads(text))
        except ValueError:
            parts = None
        literal = str(exc)
        if len(literal) > 40:  # 1 and five thousand zeros: not worth repeating in full
            literal = f"{literal[:20]}… ({len(literal)} characters)"
        raise InputError(f"must be a finite number, not {literal}", file=file, line=line,
                         field=where(parts)) from None
    except _LongInt as exc:
        raise InputError(long_int_message(exc.digits), file=file, line=line,
                         field=where(_long_int_path(text))) from None


def open_bytes(path: Path) -> Any:
    """The file's bytes, gunzipped when its name ends in ``.gz``."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


# what reading a file can raise: unreadable (a folder, no permission), or a gzip stream
# that is cut (EOFError) or not gzip at all (BadGzipFile, an OSError; zlib.error)
READ_ERRORS = (OSError, EOFError, zlib.error)


def read_error(path: Path, exc: BaseException, line: int | None) -> InputError:
    """A file that cannot be read on from ``line`` (None: from the start)."""
    return InputError(f"cannot read file ({exc})", file=str(path), line=line)


def text_lines(path: Path) -> Iterator[tuple[int, str | InputError]]:
    """``(line number, text)`` for each line of a text[.gz] file, decoded as UTF-8 (a
    byte-order mark before the first line dropped); a line that is not UTF-8 gives an
    :class:`InputError` in its place, so a caller may skip it or stop. A file that
    cannot be read on raises one naming the line it stopped at."""
    number = 0
    try:
        with open_bytes(path) as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield number, InputError(
                        f"not UTF-8 text (byte {exc.start + 1} of the line)",
                        file=str(path), line=number)
                    continue
                if number == 1:  # a byte-order mark (PowerShell, Notepad) is not content
                    text = text.removeprefix("\ufeff")
                yield number, text
    except READ_ERRORS as exc:
        raise read_error(path, exc, number + 1 if number else None) from None


def iter_json_objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSONL[.gz] file."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", file=str(path))
    for number, text in text_lines(path):
        if isinstance(text, InputError):
            raise text
        if not text.strip():
            continue
        try:
            obj = loads_strict(text, file=str(path), line=number)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg})", file=str(path),
                             line=number) from None
        if not isinstance(obj, dict):
            raise InputError("each line must be a JSON object", file=str(path),
                             line=number)
        yield number, obj
