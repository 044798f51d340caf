"""PostgreSQL bulk path: COPY into a temporary table, then one idempotent INSERT.

COPY is PostgreSQL's fastest way in; staging keeps ``ON CONFLICT DO NOTHING`` (so
concurrent ingests of the same batch stay idempotent) and keeps the write inside the
caller's transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from hilt.events.ingest import BULK_COLUMNS as COLUMNS  # one column list for both paths


def copy_insert(session: Session, rows: list[tuple[Any, ...]]) -> int:
    """Insert rows (values in ``COLUMNS`` order); returns how many were new."""
    conn = session.connection().connection.driver_connection
    cols = ", ".join(COLUMNS)
    with conn.cursor() as cur:  # type: ignore[union-attr]
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS hilt_ingest_stage "
                    "(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        cur.execute("TRUNCATE hilt_ingest_stage")
        with cur.copy(f"COPY hilt_ingest_stage ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(f"INSERT INTO events ({cols}) SELECT {cols} FROM hilt_ingest_stage "
                    "ON CONFLICT (id) DO NOTHING")
        inserted = cur.rowcount
        cur.execute("TRUNCATE hilt_ingest_stage")
    return inserted


def stored_hashes(session: Session, ids: list[str]) -> dict[str, str]:
    """``{id: content_hash}`` of the ids already stored; the ids go as one array."""
    conn = session.connection().connection.driver_connection
    with conn.cursor() as cur:  # type: ignore[union-attr]
        cur.execute("SELECT id, content_hash FROM events WHERE id = ANY(%s)", (ids,))
        return dict(cur.fetchall())
