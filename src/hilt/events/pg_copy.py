"""PostgreSQL bulk path: COPY into a temporary table, then one idempotent INSERT.

COPY is PostgreSQL's fastest way in; staging keeps ``ON CONFLICT DO NOTHING`` (so
concurrent ingests of the same batch stay idempotent) and keeps the write inside the
caller's transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from hilt.events.ingest import BULK_COLUMNS as COLUMNS  # one column list for both paths


def copy_insert(session: Session, rows: list[dict[str, Any]]) -> int:
    conn = session.connection().connection.driver_connection
    cols = ", ".join(COLUMNS)
    with conn.cursor() as cur:  # type: ignore[union-attr]
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS hilt_ingest_stage "
                    "(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        cur.execute("TRUNCATE hilt_ingest_stage")
        with cur.copy(f"COPY hilt_ingest_stage ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in COLUMNS])
        cur.execute(f"INSERT INTO events ({cols}) SELECT {cols} FROM hilt_ingest_stage "
                    "ON CONFLICT (id) DO NOTHING")
        inserted = cur.rowcount
        cur.execute("TRUNCATE hilt_ingest_stage")
    return inserted
