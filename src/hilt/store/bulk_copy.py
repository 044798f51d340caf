"""PostgreSQL binary ``COPY`` of plain row tuples: the bulk write of ingest and of the
audit sealer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def copy_rows(cur: Any, table: str, columns: Sequence[str], types: Sequence[str],
              rows: Iterable[tuple[Any, ...]]) -> None:
    """Write ``rows`` (values in ``columns`` order) into ``table`` through psycopg cursor
    ``cur``. Binary COPY carries no types of its own, so ``types`` names the PostgreSQL
    type of each column (the callers' tests compare them with the migrated tables)."""
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)
