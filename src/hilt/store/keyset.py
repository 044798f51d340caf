"""Keyset paging for lists read a page at a time.

A list is sorted by a few columns, the last of them unique (an id), so that the order
is total: rows that share a time still come in one order. A page's cursor holds the
sort key of its last row, and the next page is the rows strictly after that key. Unlike
an offset, a row written between two reads neither repeats a row nor skips one that was
already there.

The cursor is text, opaque to clients: the key's parts joined by ``~`` (times in UTC as
``2026-01-02T03:04:05.000006Z``, numbers in decimal), URL-safe as it is (no ``+`` that
a query string would read as a space).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute

from hilt.errors import InputError

SEP = "~"
FIELD = "after"
# What a malformed cursor is told: the only cursors that read are those hilt gave.
NOT_A_CURSOR = "not a cursor from an earlier page of this list"
_INT = re.compile(r"-?[0-9]{1,19}")
_BIGINT = 2**63

Row = TypeVar("Row")


@dataclass(frozen=True)
class Keyset:
    """A total sort order: ``(column, descending)`` pairs, the last one unique."""

    columns: tuple[tuple[InstrumentedAttribute[Any], bool], ...]

    def order_by(self) -> list[sa.ColumnElement[Any]]:
        return [c.desc() if desc else c.asc() for c, desc in self.columns]

    def after(self, cursor: str) -> sa.ColumnElement[bool]:
        """The rows that sort after the key in ``cursor`` (refused, naming ``after``,
        when it is no cursor of this order)."""
        key = self.parse(cursor)
        either: list[sa.ColumnElement[bool]] = []
        for i, (column, desc) in enumerate(self.columns):
            ties = [c == v for (c, _), v in zip(self.columns[:i], key[:i], strict=True)]
            beyond = column < key[i] if desc else column > key[i]
            either.append(sa.and_(*ties, beyond))
        return sa.or_(*either)

    def cursor(self, row: Any) -> str:
        parts = [_encode(getattr(row, c.key)) for c, _ in self.columns]
        assert all(SEP not in p for p in parts[:-1]), parts  # only the last may hold one
        return SEP.join(parts)

    def parse(self, cursor: str) -> tuple[Any, ...]:
        parts = cursor.split(SEP, len(self.columns) - 1)
        if len(parts) != len(self.columns):
            raise InputError(NOT_A_CURSOR, field=FIELD)
        return tuple(_decode(p, _kind(c)) for p, (c, _) in
                     zip(parts, self.columns, strict=True))

    def page(self, rows: Sequence[Row], limit: int) -> tuple[list[Row], str | None]:
        """The first ``limit`` of ``rows`` (read with a limit of ``limit + 1``) and the
        cursor of the next page: ``None`` when no row is left after these."""
        shown = list(rows[:limit])
        more = len(rows) > limit and bool(shown)
        return shown, self.cursor(shown[-1]) if more else None


def keyset(*columns: tuple[InstrumentedAttribute[Any], bool]) -> Keyset:
    return Keyset(tuple(columns))


def _kind(column: InstrumentedAttribute[Any]) -> type:
    kind = column.type
    # A type of hilt's own (UTCDateTime) decorates a standard one, which has the type.
    standard = kind.impl_instance if isinstance(kind, sa.TypeDecorator) else kind
    return standard.python_type


def _encode(value: Any) -> str:
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo else value
        return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    if isinstance(value, float):
        return repr(value).replace("+", "")  # 1e+20 reads back as 1e20
    return str(value)


def _decode(text: str, kind: type) -> Any:
    value = _decoded(text, kind)
    if value is None:
        raise InputError(NOT_A_CURSOR, field=FIELD)
    return value


def _decoded(text: str, kind: type) -> Any:
    """The value ``text`` encodes, or ``None`` if it is none the database could hold."""
    if kind is datetime:
        try:
            when = datetime.fromisoformat(text)
            # A time whose UTC form leaves years 1..9999 could not be bound.
            return when.astimezone(UTC) if when.tzinfo is not None else None
        except (ValueError, OverflowError):
            return None
    if kind is float:
        try:
            number = float(text)
        except ValueError:
            return None
        return None if math.isnan(number) else number
    if kind is int:
        if not _INT.fullmatch(text) or not -_BIGINT <= int(text) < _BIGINT:
            return None
        return int(text)
    # Text (an id): non-empty, and no control character (PostgreSQL refuses NUL).
    return text if text and text.isprintable() else None
