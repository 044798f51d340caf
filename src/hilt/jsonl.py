"""JSON-lines input (training files, suite and response files): plain or gzipped, one
object per line, errors that name the file and the line.

Lines are read as bytes and decoded one at a time, so a byte that is not UTF-8 is
reported on its own line rather than as a traceback from a decoder somewhere in a
buffered block.

A key repeated in one object, and a number that is not finite (``NaN``, ``Infinity``,
or a literal too large for a float such as ``1e999``), are refused with the line and the
field: ``json`` would keep the last of the repeated values, and read the numbers as
values that cannot be written back as JSON.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Iterator
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


_DECODER = json.JSONDecoder(object_pairs_hook=unique_keys, parse_float=_finite_float,
                            parse_constant=_refuse_constant)


def field_path(parts: tuple[str | int, ...]) -> str:
    """``("a", 0, "b")`` → ``a[0].b``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


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
    no key repeats, or the text is not JSON)."""

    class Marked(dict[str, Any]):
        repeated: str | None = None

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = Marked(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen and obj.repeated is None:
                    obj.repeated = key
                seen.add(key)
        return obj

    def find(value: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
        if isinstance(value, Marked) and value.repeated is not None:
            return (*path, value.repeated)
        items = (value.items() if isinstance(value, dict)
                 else enumerate(value) if isinstance(value, list) else ())
        for key, item in items:
            found = find(item, (*path, key))
            if found is not None:
                return found
        return None

    try:
        return find(json.loads(text, object_pairs_hook=hook), ())
    except ValueError:
        return None


def loads_strict(text: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> Any:
    """``json.loads`` that refuses a key repeated in an object and a number that is not
    finite, naming ``file``, ``line`` and the field (below ``field`` when given)."""

    def where(parts: tuple[str | int, ...] | None) -> str | None:
        inner = field_path(parts) if parts else ""
        if field and inner:
            return f"{field}{'' if inner.startswith('[') else '.'}{inner}"
        return field or inner or None

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
        raise InputError(f"must be a finite number, not {exc}", file=file, line=line,
                         field=where(parts)) from None


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
