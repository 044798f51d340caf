"""Alembic environment: the engine is handed over by ``hilt.store.db.migrate``."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from hilt.store.db import check_foreign_keys, foreign_keys_off, make_engine
from hilt.store.pg_locks import SCHEMA_KEY, lock_params
from hilt.store.tables import Base

config = context.config
engine = config.attributes.get("engine") or make_engine(create=True)
# Any constant works; it only has to be the same for every hilt process migrating one
# schema (and differ from the audit chain's lock key; see hilt.store.pg_locks).
MIGRATION_LOCK_KEY = 0x68696C75

with engine.connect() as connection, foreign_keys_off(connection):
    is_pg = connection.dialect.name == "postgresql"
    if is_pg:
        # Two `hilt init` at once on a fresh database would both create the same types
        # and tables, and one would fail on a duplicate key. A session-level lock makes
        # the second wait for the first; it then finds the schema current and does
        # nothing. (SQLite needs no lock: every transaction there takes the write lock.)
        connection.execute(sa.text(f"SELECT pg_advisory_lock(:lock_space, {SCHEMA_KEY})"),
                           lock_params(MIGRATION_LOCK_KEY))
        connection.commit()
    try:
        # SQLite: each migration step is checked for references without a target
        # before it commits (foreign keys are off while the steps rebuild tables).
        context.configure(connection=connection, target_metadata=Base.metadata,
                          render_as_batch=connection.dialect.name == "sqlite",
                          on_version_apply=check_foreign_keys)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if is_pg:
            connection.rollback()
            connection.execute(sa.text(f"SELECT pg_advisory_unlock(:lock_space, {SCHEMA_KEY})"),
                               lock_params(MIGRATION_LOCK_KEY))
            connection.commit()
