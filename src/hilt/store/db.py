"""Engines, sessions and schema migration.

SQLite is the zero-set-up default; PostgreSQL serves teams and several API workers.
On SQLite every transaction starts with ``BEGIN IMMEDIATE``: writers queue on the
database lock up front instead of failing with "database is locked" halfway through,
which is what makes claims and the audit chain safe across processes.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from hilt.config import database_url
from hilt.store import audit

MIGRATIONS = Path(__file__).with_name("migrations")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    url = url or database_url()
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60}, **kwargs)
        _configure_sqlite(engine)
        return engine
    # No pre-ping: it costs a round trip on every checkout, i.e. on every request. A
    # connection broken by a server restart fails one statement; SQLAlchemy then
    # invalidates the whole pool and the next checkout connects afresh.
    kwargs.setdefault("pool_pre_ping", False)
    # Enough pooled connections for a worker's concurrent requests: past pool_size,
    # returned connections are closed, and opening a PostgreSQL connection (a forked
    # backend, authentication, cold catalog caches, no prepared statements) costs far
    # more CPU than the statements it serves. LIFO keeps the warmest connections busy.
    if kwargs.get("poolclass") is None:
        kwargs.setdefault("pool_size", int(os.environ.get("HILT_DB_POOL_SIZE", "16")))
        kwargs.setdefault("max_overflow", int(os.environ.get("HILT_DB_MAX_OVERFLOW", "16")))
        kwargs.setdefault("pool_use_lifo", True)
    return sa.create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


_FACTORIES: weakref.WeakKeyDictionary[Engine, sessionmaker[Session]] = \
    weakref.WeakKeyDictionary()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    factory = _FACTORIES.get(engine)
    if factory is None:
        factory = _FACTORIES[engine] = sessionmaker(engine, expire_on_commit=False)
    return factory


@contextlib.contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back on any exception."""
    with session_factory(engine)() as session:
        with session.begin():
            yield session
        audit.after_commit(session, engine)


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema to the newest revision (``hilt init``)."""
    from alembic import command

    command.upgrade(alembic_config(engine), "head")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
