"""Read event records from JSONL (optionally gzipped), CSV and Parquet files.

Each reader yields ``(line_number, record)``; line numbers are 1-based lines of the file
(for CSV the header is line 1, so the first record is line 2; for Parquet the row
number + 1). Flat CSV/Parquet columns are mapped onto the nested event shape by
:func:`unflatten`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hilt.errors import InputError

CONTEXT_FIELDS = {
    "model_version", "prompt_template_id", "prompt_template_version", "role_format",
    "policy_version", "source", "subject_id", "consent", "tags", "metadata", "decoder",
}
DECODER_FIELDS = {"temperature", "top_p", "top_k", "max_tokens", "seed", "stop"}
JSON_FIELDS = {"messages", "responses", "feedback", "scores", "metadata", "tags", "stop",
               "decoder", "interaction", "context", "consent"}


def _open_text(path: Path) -> io.TextIOBase:
    # utf-8-sig: spreadsheet programs ("CSV UTF-8") start the file with a byte-order
    # mark, which would otherwise become part of the first column's name
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115


def file_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    for ext, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"),
                     (".csv", "csv"), (".parquet", "parquet"), (".pq", "parquet")):
        if name.endswith(ext):
            return fmt
    raise InputError("unknown file type; expected .jsonl, .csv or .parquet", file=str(path))


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
    # bytes, decoded line by line: a line that is not UTF-8 is one bad line (rejected
    # with --skip-invalid), not a decoder error that ends the whole file
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield line_no, InputError(f"not UTF-8 text (byte {exc.start + 1} of the line)",
                                          file=str(path), line=line_no)
                continue
            if line_no == 1:  # a byte-order mark (PowerShell, Notepad) is not content
                line = line.removeprefix("\ufeff")
            stripped = line.strip()
            if not stripped:
                continue
            if not stripped.startswith("{"):
                yield line_no, InputError("each line must be a JSON object",
                                          file=str(path), line=line_no)
                continue
            yield line_no, stripped


def _read_csv(path: Path) -> Iterator[tuple[int, Record]]:
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        try:
            yield from _csv_rows(path, reader)
        except UnicodeDecodeError as exc:  # a CSV record may span lines: stop, name it
            raise InputError(f"not UTF-8 text ({exc.reason})", file=str(path),
                             line=reader.line_num + 1) from None


def _csv_rows(path: Path, reader: csv.DictReader[str]) -> Iterator[tuple[int, Record]]:
    if reader.fieldnames is None:
        raise InputError("empty CSV file (no header)", file=str(path), line=1)
    for record in reader:
        line_no = reader.line_num
        if None in record:
            yield line_no, InputError("more cells than header columns",
                                      file=str(path), line=line_no)
            continue
        try:
            yield line_no, unflatten(record, file=str(path), line=line_no)
        except InputError as err:
            yield line_no, err


def _read_parquet(path: Path) -> Iterator[tuple[int, Record]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    for i, record in enumerate(table.to_pylist(), start=1):
        try:
            yield i, unflatten(record, file=str(path), line=i)
        except InputError as err:
            yield i, err


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
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON in cell: {exc.msg}", file=file, line=line,
                             field=key) from None
    return value


def unflatten(row: dict[str, Any], *, file: str, line: int) -> dict[str, Any]:
    """Map a flat row onto the nested event shape.

    ``prompt`` and ``response`` are shorthands; dotted names (``context.decoder.seed``)
    set nested fields; context and decoder field names may be given bare. Empty CSV
    cells mean "not given".
    """
    out: dict[str, Any] = {}
    for key, raw in row.items():
        if raw is None or (isinstance(raw, str) and raw == ""):
            continue
        value = _parse_cell(key, raw, file, line)
        if key == "prompt":
            path = ["interaction", "prompt"]
        elif key == "messages":
            path = ["interaction", "messages"]
        elif key == "response":
            if row.get("responses") not in (None, ""):
                # which one would win depended on the column order: refuse both
                raise InputError("give 'response' or 'responses', not both", file=file,
                                 line=line, field="response")
            out.setdefault("responses", []).insert(0, {"text": value})
            continue
        elif key in DECODER_FIELDS:
            path = ["context", "decoder", key]
        elif key in CONTEXT_FIELDS:
            path = ["context", key]
        else:
            path = key.split(".")
        node = out
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise InputError("conflicting columns", file=file, line=line, field=key)
            node = nxt
        node[path[-1]] = value
    return out
