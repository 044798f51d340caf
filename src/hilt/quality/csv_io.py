"""Reading answer and gold CSV files strictly, and writing result files atomically.

Every problem is an :class:`hilt.errors.InputError` naming the file, the 1-based line and
the field. Writers go through a temporary file in the target folder and an atomic
rename, so a failed run never leaves a half-written file behind.
"""

from __future__ import annotations

import csv
import io
import math
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from hilt.errors import InputError
from hilt.staging import PrivateFile
from hilt.umask import new_file_mode

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

    Empty values in required columns, a required column named twice in the header, short
    rows, malformed CSV and a file with no rows below its header are errors.
    Completely blank lines are skipped.
    """
    file_path = Path(path)
    text = _decode(file_path)
    # strict: a quote that is never closed is an error, not a field that swallows the
    # rest of the file.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    name = str(file_path)
    header: list[str] | None = None
    start_line = 1
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
            if header.count(column) > 1:
                # Two columns of one name: which one holds the data is anyone's guess.
                raise InputError(f"column {column!r} appears {header.count(column)} times in "
                                 "the header", file=name, line=1, field=column)
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
                if "\n" in value or "\r" in value:
                    # A quoted value over several lines is almost always a quote left
                    # open by mistake, and no label, item or reviewer id holds one.
                    raise InputError("value spans several lines (a quote left open?)",
                                     file=name, line=line, field=column)
                values[column].append(value)
            lines.append(line)
    except csv.Error as exc:
        at, field, problem = _locate_csv_error(text, start_line, header)
        raise InputError(f"malformed CSV: {problem or exc}", file=name,
                         line=at or reader.line_num, field=field) from exc
    if not lines:
        # A header alone (or blank lines below it) is an export that went wrong, not a
        # set of answers with nothing to say: it would give an empty result and exit 0.
        raise InputError("the file has no rows below its header", file=name)
    return CsvColumns(path=name, columns=values, lines=lines)


def _locate_csv_error(text: str, start_line: int, header: list[str] | None
                      ) -> tuple[int | None, str | None, str | None]:
    """Where the row starting at ``start_line`` breaks the CSV quoting rules: the line,
    the column (header name, or ``column N``) and the problem, for a quote that is never
    closed or a character after a closing quote; ``None`` for what cannot be told."""
    # Split the way the csv reader counts lines (\n, \r, \r\n only).
    lines = io.StringIO(text, newline="").readlines()
    rest = "".join(lines[start_line - 1:])
    line, column, position = start_line, 0, 0
    at_field_start, quoted, opened = True, False, (start_line, 0)

    def name(index: int) -> str:
        names = [c.strip() for c in header] if header is not None else []
        return names[index] if index < len(names) and names[index] else f"column {index + 1}"

    while position < len(rest):
        char = rest[position]
        if quoted:
            if char == '"':
                if rest.startswith('"', position + 1):
                    position += 1  # an escaped quote
                else:
                    quoted = False
                    after = rest[position + 1:position + 2]
                    if after not in ("", ",", "\n", "\r"):
                        return line, name(column), (f"{after!r} after the closing quote "
                                                    "(a quote inside a quoted value is "
                                                    'written "")')
        elif char == '"' and at_field_start:
            quoted, opened = True, (line, column)
        elif char == ",":
            column += 1
            at_field_start = True
            position += 1
            continue
        elif char in "\r\n":
            return None, None, None  # the row ended without a quoting problem
        if char == "\n" or (char == "\r" and not rest.startswith("\n", position + 1)):
            line += 1
        at_field_start = False
        position += 1
    if quoted:
        return opened[0], name(opened[1]), "the quote opened here is never closed"
    return None, None, None


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


MAX_LABEL_MAGNITUDE = 1e15
"""Largest magnitude of a numeric label. Ratings and scores lie far below it; beyond it a
float no longer holds every integer exactly, and the sums and squares that aggregation
and agreement take of the labels could overflow (to ``inf`` and ``nan``)."""


def label_number(text: str) -> tuple[float | None, str]:
    """A label's text as a number, or ``None`` with the reason it is not usable as one:
    not a number, not finite, or beyond ±:data:`MAX_LABEL_MAGNITUDE`."""
    try:
        value = float(text)
    except ValueError:
        return None, "is not a finite number"
    if not math.isfinite(value):
        return None, "is not a finite number"
    if abs(value) > MAX_LABEL_MAGNITUDE:
        return None, ("is out of range: numeric labels lie within "
                      f"±{MAX_LABEL_MAGNITUDE:g}".replace("e+", "e"))
    return value, ""


def numeric_labels(table: CsvColumns, reason: str) -> np.ndarray:
    """The ``label`` column as floats; the first label that is not a number within
    ±:data:`MAX_LABEL_MAGNITUDE` is reported with its line."""
    labels = table.columns["label"]
    values = np.empty(len(labels))
    for index, text in enumerate(labels):
        value, problem = label_number(text)
        if value is None:
            raise InputError(f"label {text!r} {problem} ({reason})",
                             file=table.path, line=table.lines[index], field="label")
        values[index] = value
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


def _output_error(path: Path, exc: OSError, field: str | None) -> InputError:
    return InputError(f"cannot write output: {exc.strerror or exc}", file=str(path),
                      field=field)


def check_output(path: Path | str, field: str | None = None) -> Path:
    """Check, before anything is written, that ``path`` can become an output file: it is
    not a folder, and its nearest existing parent is a writable folder."""
    target = Path(path)
    if target.is_dir():
        raise InputError("is a folder, not a file", file=str(target), field=field)
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{parent} is not a folder", file=str(target), field=field)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"folder {parent} is not writable", file=str(target), field=field)
    return target


def _keep_old(target: Path) -> Path | None:
    """A second name for ``target``'s current content (``None`` when there is none yet):
    a hard link beside it (to a symbolic link itself, not what it points to), or a copy
    where the file system has no hard links."""
    if not os.path.lexists(target):
        return None
    for _ in range(100):
        kept = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
        if os.path.lexists(kept):
            continue
        try:
            os.link(target, kept, follow_symlinks=False)
        except FileExistsError:
            continue
        except (OSError, NotImplementedError):
            # No hard links here (or not for this file): a copy keeps the content.
            try:
                shutil.copy2(target, kept, follow_symlinks=False)
            except OSError:
                kept.unlink(missing_ok=True)
                raise
        return kept
    raise FileExistsError(f"no free name to keep {target.name} under")


def _put_back(kept: list[tuple[Path, Path | None]]) -> list[str]:
    """Undo the renames of a commit that failed, newest first: each target gets its old
    content back, or is removed when it did not exist. Returns the targets that could
    not be restored (their old content stays under the kept name)."""
    unrestored = []
    for target, old in reversed(kept):
        try:
            if old is None:
                target.unlink(missing_ok=True)
            else:
                os.replace(old, target)
                # A rename between two names of one file does nothing: when the target
                # was never replaced, the kept name is still there.
                old.unlink(missing_ok=True)
        except OSError:
            unrestored.append(str(target))
    return unrestored


class OutputFiles:
    """Several output files that appear together or not at all.

    :meth:`add_csv` / :meth:`add_text` write each file to a temporary file beside its
    target; :meth:`commit` renames them all into place. A failure before the commit
    removes every temporary, so nothing is written. The commit keeps each target that
    already exists under a second name (a hard link, or a copy where the file system has
    none) until every rename has succeeded: when one fails, the files already moved are
    put back, so the targets hold their old content (or are absent again) and never a
    mix of old and new files. Only a process killed between two renames can leave such a
    mix, with the kept copy beside the target as ``.NAME.*.old``. An ``OSError`` is an
    :class:`InputError` naming the file (and the option, ``field``). The files get the
    mode a plain ``open()`` would give them (the umask applies), not the private mode
    of a temporary file.
    """

    def __init__(self) -> None:
        self._staged: list[tuple[PrivateFile, Path, str | None]] = []

    def __enter__(self) -> OutputFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def _stage(self, path: Path | str, field: str | None,
               write: Callable[[TextIO], None], newline: str | None) -> None:
        target = check_output(path, field)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = PrivateFile(target, ".tmp")
        except OSError as exc:
            raise _output_error(target, exc, field) from None
        self._staged.append((temporary, target, field))
        try:
            os.chmod(temporary.path, new_file_mode())
            with temporary.text_writer(newline) as stream:
                write(stream)
        except OSError as exc:
            raise _output_error(target, exc, field) from None

    def add_csv(self, path: Path | str, header: Sequence[str],
                rows: Iterable[Sequence[object]], field: str | None = None) -> None:
        def write(stream: TextIO) -> None:
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        self._stage(path, field, write, "")

    def add_text(self, path: Path | str, text: str, field: str | None = None) -> None:
        def write(stream: TextIO) -> None:
            stream.write(text)
        self._stage(path, field, write, None)

    def commit(self) -> None:
        """Move every staged file into place: all of them, or (on an error) none."""
        staged, self._staged = self._staged, []
        kept: list[tuple[Path, Path | None]] = []  # (target, its old file or None)
        try:
            for temporary, target, field in staged:
                try:
                    # Kept before the rename replaces it, and only then: the target never
                    # goes missing, and a file that cannot be kept is not replaced.
                    kept.append((target, _keep_old(target)))
                    os.replace(temporary.path, target)
                except OSError as exc:
                    error = _output_error(target, exc, field)
                    unrestored = _put_back(kept)
                    if unrestored:
                        raise InputError(
                            f"{error.reason}; the earlier content of "
                            f"{', '.join(unrestored)} could not be put back and is "
                            "kept beside it", file=error.file, field=field) from None
                    raise error from None
            for _, old in kept:
                if old is not None:
                    old.unlink(missing_ok=True)
        finally:
            self._staged = staged
            self.discard()

    def discard(self) -> None:
        """Remove the temporaries not yet in place (and let go of the others)."""
        for temporary, _, _ in self._staged:
            temporary.close()
        self._staged = []


def write_csv_atomic(path: Path | str, header: Sequence[str],
                     rows: Iterable[Sequence[object]], field: str | None = None) -> None:
    """Write a CSV file through a temporary file and an atomic rename."""
    with OutputFiles() as outputs:
        outputs.add_csv(path, header, rows, field)
        outputs.commit()


def write_text_atomic(path: Path | str, text: str, field: str | None = None) -> None:
    """Write a text file through a temporary file and an atomic rename."""
    with OutputFiles() as outputs:
        outputs.add_text(path, text, field)
        outputs.commit()
