"""Alembic environment: the engine is handed over by ``hilt.store.db.migrate``."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from hilt.store.db import make_engine
from hilt.store.tables import Base

config = context.config
engine = config.attributes.get("engine") or make_engine(create=True)
# Any constant works; it only has to be the same for every hilt process migrating one
# database (and differ from the audit chain's lock key).
MIGRATION_LOCK_KEY = 0x68696C75

with engine.connect() as connection:
    is_pg = connection.dialect.name == "postgresql"
    if is_pg:
        # Two `hilt init` at once on a fresh database would both create the same types
        # and tables, and one would fail on a duplicate key. A session-level lock makes
        # the second wait for the first; it then finds the schema current and does
        # nothing. (SQLite needs no lock: every transaction there takes the write lock.)
        connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        connection.commit()
    try:
        context.configure(connection=connection, target_metadata=Base.metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if is_pg:
            connection.rollback()
            connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"),
                               {"k": MIGRATION_LOCK_KEY})
            connection.commit()
