"""Alembic environment: the engine is handed over by ``hilt.store.db.migrate``."""

from __future__ import annotations

from alembic import context

from hilt.store.db import make_engine
from hilt.store.tables import Base

config = context.config
engine = config.attributes.get("engine") or make_engine()

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
