"""Read event records from JSONL (optionally gzipped), CSV and Parquet files.

Each reader yields ``(line_number, record)``; line numbers are 1-based lines of the file
(for CSV the header is line 1, so the first record is line 2; for Parquet the row
number + 1). Flat CSV/Parquet columns are mapped onto the nested event shape by
:func:`unflatten`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hilt.errors import InputError
from hilt.events.text import unstorable_text_error
from hilt.jsonl import READ_ERRORS, loads_strict, open_bytes, read_error

CONTEXT_FIELDS = {
    "model_version", "prompt_template_id", "prompt_template_version", "role_format",
    "policy_version", "source", "subject_id", "consent", "tags", "metadata", "decoder",
}
DECODER_FIELDS = {"temperature", "top_p", "top_k", "max_tokens", "seed", "stop"}
JSON_FIELDS = {"messages", "responses", "feedback", "scores", "metadata", "tags", "stop",
               "decoder", "interaction", "context", "consent"}


def file_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    for ext, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"),
                     (".csv", "csv"), (".parquet", "parquet"), (".pq", "parquet")):
        if name.endswith(ext):
            return fmt
    raise InputError("unknown file type; expected .jsonl, .csv or .parquet", file=str(path))


class BadRecord(InputError):
    """A record that cannot be made into an event, with what the file holds for it
    (``raw``: the line's text, or a CSV row's cells), so that the rejects file keeps
    the line rather than only its line number."""

    def __init__(self, message: str, *, raw: Any, file: str, line: int,
                 field: str | None = None) -> None:
        super().__init__(message, file=file, line=line, field=field)
        self.raw = raw


Record = dict[str, Any] | str | InputError


def read_records(path: str | Path, *, lenient: bool = False
                 ) -> Iterator[tuple[int, dict[str, Any] | str | InputError]]:
    """Yield ``(line, record)``; a line that cannot be read raises, or with ``lenient``
    is yielded as its :class:`InputError` so the caller can reject it and go on.

    JSONL records come as the raw line (str): pydantic parses and validates JSON in one
    pass, about twice as fast as ``json.loads`` followed by validation.
    """
    for line, item in _read_any(Path(path)):
        if isinstance(item, InputError) and not lenient:
            raise item
        yield line, item


def _read_any(path: Path) -> Iterator[tuple[int, Record]]:
    if not path.exists():
        raise InputError("file not found", file=str(path))
    fmt = file_format(path)
    if fmt == "jsonl":
        yield from _read_jsonl(path)
    elif fmt == "csv":
        yield from _read_csv(path)
    else:
        yield from _read_parquet(path)


def _read_jsonl(path: Path) -> Iterator[tuple[int, Record]]:
    # a line that is not UTF-8 is one bad line (rejected with --skip-invalid), not a
    # decoder error that ends the whole file; one that cannot be read ends it
    for line_no, line in _jsonl_lines(path):
        if isinstance(line, InputError):
            yield line_no, line
            continue
        stripped = line.strip()
        if line_no == 1:  # a byte-order mark (PowerShell, Notepad) is not content
            stripped = stripped.removeprefix("\ufeff")
        if not stripped:
            continue
        if stripped.startswith("\ufeff"):
            yield line_no, BadRecord(
                "a byte-order mark (U+FEFF) starts the line: were files with one "
                "joined together? Remove it", raw=stripped, file=str(path), line=line_no)
            continue
        if not stripped.startswith("{"):
            # a file holding one JSON array of events (often named .json) is read as
            # JSON Lines: say what is expected rather than only what the line is not
            hint = (" (the line opens a JSON array; give one event object per line)"
                    if stripped.startswith("[") else "")
            yield line_no, BadRecord(f"each line must be a JSON object{hint}",
                                     raw=stripped, file=str(path), line=line_no)
            continue
        yield line_no, stripped


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str | InputError]]:
    """``(line number, text)`` for each line; a line that is not UTF-8 gives a
    :class:`BadRecord` holding the line with each such byte written as ``\\xNN``."""
    number = 0
    try:
        with open_bytes(path) as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    text = raw.decode("utf-8", "backslashreplace").rstrip("\r\n")
                    yield number, BadRecord(
                        f"not UTF-8 text (byte {exc.start + 1} of the line)", raw=text,
                        file=str(path), line=number)
    except READ_ERRORS as exc:
        raise read_error(path, exc, number + 1 if number else None) from None


# a line break as open(newline="") sees one: \r\n, \n, or a \r alone (the file is read
# as bytes, which break at \n only)
_LONE_CR = re.compile(rb"(?<=\r)(?!\n)")


class _TextLines:
    """The lines of a CSV file decoded one at a time, numbered as the csv module numbers
    them: a byte that is not UTF-8 is named on its own line (a text reader decodes
    blocks of 8 KiB ahead of the csv reader, whose line count then names an earlier
    line). A byte-order mark ("CSV UTF-8" from spreadsheet programs) is skipped, or it
    would become part of the first column's name."""

    def __init__(self, path: Path, handle: Any) -> None:
        self.path, self.handle, self.count = path, handle, 0

    def __iter__(self) -> Iterator[str]:
        for raw in self.handle:
            lone_cr = raw.find(b"\r", 0, len(raw) - 2) >= 0  # before a final \r\n
            for piece in (_LONE_CR.split(raw) if lone_cr else (raw,)):
                if not piece:
                    continue
                try:
                    text = piece.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(f"not UTF-8 text (byte {exc.start + 1} of the line)",
                                     file=str(self.path), line=self.count + 1) from None
                if self.count == 0:
                    text = text.removeprefix("\ufeff")
                self.count += 1
                yield text


def _read_csv(path: Path) -> Iterator[tuple[int, Record]]:
    lines: _TextLines | None = None
    try:
        with open_bytes(path) as fh:
            lines = _TextLines(path, fh)
            # strict: a quote that is never closed is an error, not a cell that swallows
            # every later row of the file. A record may span lines, so a line that
            # cannot be read ends the file, even with --skip-invalid.
            yield from _csv_rows(path, csv.DictReader(lines, strict=True))
    except READ_ERRORS as exc:
        raise read_error(path, exc, lines.count + 1 if lines and lines.count else None
                          ) from None


def _csv_rows(path: Path, reader: csv.DictReader[str]) -> Iterator[tuple[int, Record]]:
    fieldnames = _csv_header(path, reader)
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The file's structure is broken from here on, so no later row can be
            # trusted: this ends the file, even with --skip-invalid.
            raise InputError(f"malformed CSV ({exc}) in the record from this line on",
                             file=str(path), line=start) from None
        line_no = reader.line_num
        if None in record or None in record.values():
            # the cells cannot be matched to the columns: the rejects keep them in order
            # (DictReader puts cells past the header under None, and gives None for
            # the columns of a row that ended early)
            cells = [v for k, v in record.items() if k is not None and v is not None]
            extra = record.get(None)
            reason = ("more cells than header columns" if extra is not None else
                      f"fewer cells than header columns ({len(cells)} of "
                      f"{len(fieldnames)})")
            yield line_no, BadRecord(reason, raw=cells + list(extra or ()),
                                     file=str(path), line=line_no)
            continue
        try:
            event = unflatten(record, file=str(path), line=line_no)
        except InputError as err:
            yield line_no, BadRecord(err.reason, raw=record, file=str(path),
                                     line=line_no, field=err.field)
            continue
        # A cell holds a NUL as written or spelt in its JSON (\u0000), and a lone
        # surrogate only spelt in its JSON: only such a row is walked.
        if any("\x00" in v or "\\u" in v for v in record.values()):
            yield line_no, _storable(event, file=str(path), line=line_no)
        else:
            yield line_no, event


def _csv_header(path: Path, reader: csv.DictReader[str]) -> list[str]:
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        raise InputError(f"malformed CSV header ({exc})", file=str(path), line=1) from None
    if fieldnames is None:
        raise InputError("empty CSV file (no header)", file=str(path), line=1)
    _refuse_repeated(list(fieldnames), file=str(path), line=1)
    _require_interaction(list(fieldnames), file=str(path), line=1)
    return list(fieldnames)


def _refuse_repeated(names: list[str], *, file: str, line: int | None) -> None:
    """A name given twice would silently keep one of the cells."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"column {name!r} appears more than once in the header",
                             file=file, line=line, field=name)
        seen.add(name)


def _require_interaction(names: list[str], *, file: str, line: int | None) -> None:
    """Every event needs its interaction: without a column that gives it, every row
    would be refused alike (``field 'interaction': Field required``, which names no
    column), so the file is refused once, saying which columns give it."""
    if not any(_column_path(name)[0] == "interaction" for name in names):
        raise InputError("no column gives the interaction (x): name one 'prompt' (one "
                         "turn) or 'messages' (a JSON list of {role, content}); the "
                         f"columns are {', '.join(map(repr, names))}", file=file,
                         line=line)


def _read_parquet(path: Path) -> Iterator[tuple[int, Record]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"not a readable Parquet file ({exc})", file=str(path)) from None
    _refuse_repeated(table.column_names, file=str(path), line=None)
    _require_interaction(table.column_names, file=str(path), line=None)
    for i, record in enumerate(table.to_pylist(), start=1):
        try:
            event = unflatten(record, file=str(path), line=i)
        except InputError as err:
            yield i, BadRecord(err.reason, raw=record, file=str(path), line=i,
                               field=err.field)
            continue
        # Parquet strings are UTF-8 (no lone surrogate) but may hold a NUL, in a cell
        # or in a list or struct
        if any(isinstance(v, list | dict) or (isinstance(v, str) and "\x00" in v)
               for v in record.values()):
            yield i, _storable(event, file=str(path), line=i)
        else:
            yield i, event


def _storable(event: dict[str, Any], *, file: str, line: int) -> Record:
    """The event, or a :class:`BadRecord` holding it when it holds text no store can
    hold (:mod:`hilt.events.text`)."""
    error = unstorable_text_error(event, file=file, line=line)
    if error is None:
        return event
    return BadRecord(error.reason, raw=event, file=file, line=line, field=error.field)


def _parse_cell(key: str, value: Any, file: str, line: int) -> Any:
    if not isinstance(value, str):
        return value
    leaf = key.rsplit(".", 1)[-1]
    text = value.strip()
    if leaf == "consent" and text and not text.startswith("["):
        return [s.strip() for s in text.replace(";", ",").replace("|", ",").split(",")
                if s.strip()]
    if leaf == "tags" and text and not text.startswith("["):
        return [s.strip() for s in text.replace(";", ",").split(",") if s.strip()]
    if leaf in JSON_FIELDS and text[:1] in "[{":
        try:  # a key given twice, a number that is not finite or an integer too long
            # to read: refused by loads_strict, located
            return loads_strict(text, file=file, line=line, field=key)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON in cell: {exc.msg}", file=file, line=line,
                             field=key) from None
    return value


def unflatten(row: dict[str, Any], *, file: str, line: int) -> dict[str, Any]:
    """Map a flat row onto the nested event shape.

    ``prompt`` and ``response`` are shorthands; dotted names (``context.decoder.seed``)
    set nested fields; context and decoder field names may be given bare. Empty CSV
    cells mean "not given". Columns that reach the same field (``seed`` and
    ``context.decoder.seed``, or ``consent`` and a ``context`` JSON object holding
    ``consent``) are refused, since which one won would depend on the column order;
    a JSON object and columns setting other fields beside it are merged.
    """
    out: dict[str, Any] = {}
    owners: dict[tuple[str, ...], str] = {}  # field path -> the column that set it
    for key, raw in row.items():
        if raw is None or (isinstance(raw, str) and raw == ""):
            continue
        value = _parse_cell(key, raw, file, line)
        if key == "response":
            if row.get("responses") not in (None, ""):
                # which one would win depended on the column order: refuse both
                raise InputError("give 'response' or 'responses', not both", file=file,
                                 line=line, field="response")
            out.setdefault("responses", []).insert(0, {"text": value})
            continue
        _put(out, _column_path(key), value, key, owners, file=file, line=line)
    if "interaction" not in out:
        # the columns that give it are there (checked with the header), its cells empty
        given = [k for k in row if _column_path(k)[0] == "interaction"]
        raise InputError("the row has no interaction: its cell is empty", file=file,
                         line=line, field=given[0] if given else "interaction")
    return out


def _column_path(key: str) -> tuple[str, ...]:
    if key == "prompt":
        return ("interaction", "prompt")
    if key == "messages":
        return ("interaction", "messages")
    if key in DECODER_FIELDS:
        return ("context", "decoder", key)
    if key in CONTEXT_FIELDS:
        return ("context", key)
    return tuple(key.split("."))


def _put(root: dict[str, Any], path: tuple[str, ...], value: Any, key: str,
         owners: dict[tuple[str, ...], str], *, file: str, line: int) -> None:
    """Set ``value`` at ``path`` under ``root``, merging a JSON object into fields set
    beside it; a field set twice raises, naming both columns."""
    node = root
    for depth, part in enumerate(path[:-1], start=1):
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            _conflict(key, owners.get(path[:depth]), path, file=file, line=line)
        node = nxt
    leaf = path[-1]
    if leaf not in node:
        node[leaf] = value
        owners[path] = key
        return
    if not (isinstance(node[leaf], dict) and isinstance(value, dict)):
        _conflict(key, _owner_within(owners, path), path, file=file, line=line)
    for name, item in value.items():
        _put(root, (*path, name), item, key, owners, file=file, line=line)


def _owner_within(owners: dict[tuple[str, ...], str], path: tuple[str, ...]) -> str | None:
    """The column that set ``path``, a field above it or one below it."""
    return next((col for p, col in owners.items()
                 if p[:len(path)] == path or path[:len(p)] == p), None)


def _conflict(key: str, other: str | None, path: tuple[str, ...], *, file: str,
              line: int) -> None:
    names = f"{other!r} and {key!r}" if other and other != key else repr(key)
    raise InputError(f"conflicting columns: {names} both set {'.'.join(path)}",
                     file=file, line=line, field=key)
