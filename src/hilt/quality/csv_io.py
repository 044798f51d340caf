"""Reading answer and gold CSV files strictly, and writing result files atomically.

Every problem is an :class:`hilt.errors.InputError` naming the file, the 1-based line and
the field. Writers go through a temporary file in the target folder and an atomic
rename, so a failed run never leaves a half-written file behind.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hilt.errors import InputError

ANSWER_COLUMNS = ("item", "reviewer", "label")
GOLD_COLUMNS = ("item", "label")


@dataclass(frozen=True)
class CsvColumns:
    """Selected columns of a CSV file (strings) with the file line of each row."""

    path: str
    columns: dict[str, list[str]]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.lines)


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=str(path)) from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError("not valid UTF-8 text", file=str(path), line=line) from exc


def read_csv_columns(path: Path | str, required: Sequence[str]) -> CsvColumns:
    """The ``required`` columns of a headed CSV file; other columns are ignored.

    Empty values in required columns, short rows and malformed CSV are errors.
    Completely blank lines are skipped.
    """
    file_path = Path(path)
    text = _decode(file_path)
    reader = csv.reader(io.StringIO(text, newline=""))
    name = str(file_path)
    try:
        header = next(reader, None)
        if header is None:
            raise InputError("empty file: expected a header with columns "
                             + ", ".join(required), file=name, line=1)
        header = [column.strip() for column in header]
        positions: dict[str, int] = {}
        for column in required:
            if column not in header:
                raise InputError(f"missing column {column!r} in the header "
                                 f"(found: {', '.join(header)})", file=name, line=1, field=column)
            positions[column] = header.index(column)
        values: dict[str, list[str]] = {column: [] for column in required}
        lines: list[int] = []
        start_line = reader.line_num + 1
        for row in reader:
            line = start_line
            start_line = reader.line_num + 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            for column, position in positions.items():
                if position >= len(row):
                    raise InputError(f"row has {len(row)} fields, expected at least "
                                     f"{position + 1}", file=name, line=line, field=column)
                value = row[position].strip()
                if not value:
                    raise InputError("empty value", file=name, line=line, field=column)
                values[column].append(value)
            lines.append(line)
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", file=name, line=reader.line_num) from exc
    return CsvColumns(path=name, columns=values, lines=lines)


def read_answers(path: Path | str) -> CsvColumns:
    """An answers file: header with ``item,reviewer,label`` (other columns ignored)."""
    return read_csv_columns(path, ANSWER_COLUMNS)


@dataclass(frozen=True)
class GoldFile:
    """Known labels per item, with the file line each came from."""

    path: str
    labels: dict[str, str]
    lines: dict[str, int]


def read_gold(path: Path | str) -> GoldFile:
    """A gold file ``item,label``; an item listed twice with different labels is an error."""
    table = read_csv_columns(path, GOLD_COLUMNS)
    labels: dict[str, str] = {}
    lines: dict[str, int] = {}
    for item, label, line in zip(table.columns["item"], table.columns["label"], table.lines,
                                 strict=True):
        if item in labels and labels[item] != label:
            raise InputError(f"item {item!r} has two different gold labels "
                             f"({labels[item]!r} and {label!r})", file=table.path, line=line,
                             field="label")
        labels[item] = label
        lines.setdefault(item, line)
    return GoldFile(path=table.path, labels=labels, lines=lines)


def numeric_labels(table: CsvColumns, reason: str) -> np.ndarray:
    """The ``label`` column as floats; the first non-number is reported with its line."""
    labels = table.columns["label"]
    values = np.empty(len(labels))
    for index, text in enumerate(labels):
        try:
            values[index] = float(text)
        except ValueError:
            values[index] = np.nan
        if not np.isfinite(values[index]):
            raise InputError(f"label {text!r} is not a finite number ({reason})",
                             file=table.path, line=table.lines[index], field="label")
    return values


def first_duplicate_pair(table: CsvColumns) -> int | None:
    """Line of the first answer repeating an earlier (item, reviewer) pair, if any."""
    seen: set[tuple[str, str]] = set()
    for item, reviewer, line in zip(table.columns["item"], table.columns["reviewer"],
                                    table.lines, strict=True):
        key = (item, reviewer)
        if key in seen:
            return line
        seen.add(key)
    return None


def write_csv_atomic(path: Path | str, header: Sequence[str],
                     rows: Iterable[Sequence[object]]) -> None:
    """Write a CSV file through a temporary file and an atomic rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                         dir=target.parent)
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write a text file through a temporary file and an atomic rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                         dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
