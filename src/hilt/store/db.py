"""Engines, sessions and schema migration.

SQLite is the zero-set-up default; PostgreSQL serves teams and several API workers.
On SQLite every transaction of :func:`transaction` starts with ``BEGIN IMMEDIATE``:
writers queue on the database lock up front instead of failing with "database is
locked" halfway through, which is what makes claims and the audit chain safe across
processes. Pure reads use :func:`read_snapshot` instead: a plain deferred ``BEGIN``,
which in WAL mode reads one consistent snapshot and never holds up a writer.

A SQLite file is created only by :func:`migrate` (``hilt init``) or by an engine made
with ``create=True``: any other command pointed at a missing file (a mistyped path, say)
stops with an error instead of leaving an empty database and its folders behind.

Commands also check, once per engine, that the database's schema is the one this hilt
was written for (:func:`check_schema_on_connect`): an older schema is to be upgraded
with ``hilt init``, a newer one belongs to a newer hilt. Engines that migrate are exempt.
"""

from __future__ import annotations

import contextlib
import random
import time
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from hilt.config import database_url, env_int
from hilt.errors import InputError
from hilt.store import audit, engine_scope

Result = TypeVar("Result")

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext, MigrationInfo

MIGRATIONS = Path(__file__).with_name("migrations")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


# Engines allowed to create their SQLite file (see the module doc).
_MAY_CREATE: weakref.WeakSet[Engine] = weakref.WeakSet()
# An execution option: the transaction only reads (see read_snapshot).
_READ_ONLY = "hilt_read_only"
# An execution option marking engines made by make_engine (and the option engines
# derived from them): only these are hilt databases whose schema is checked.
_HILT_ENGINE = "hilt_engine"
# Pools whose database passed the schema check (shared by an engine and its option
# engines; a disposed engine's new pool is checked again).
_SCHEMA_CHECKED: weakref.WeakSet[Any] = weakref.WeakSet()


def sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite file database; ``None`` for PostgreSQL and in-memory ones."""
    if not is_sqlite(engine):
        return None
    path = engine.url.database
    return Path(path) if path and path != ":memory:" and not path.startswith("file:") \
        else None


def allow_create(engine: Engine) -> None:
    """Let ``engine`` create its SQLite file and the folders above it."""
    _MAY_CREATE.add(engine)
    path = sqlite_file(engine)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str | None = None, *, create: bool = False, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default :func:`hilt.config.database_url`). ``create``: a
    missing SQLite file may be created (otherwise connecting to it is an error)."""
    url = driver_url(url or database_url())
    # A failed statement's bound values (a webhook secret, a token hash, a reviewer's
    # text) stay out of error messages, logs and failed jobs' errors.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60}, **kwargs)
        _configure_sqlite(engine)
        if create:
            allow_create(engine)
        return _mark(engine)
    # No pre-ping: it costs a round trip on every checkout, i.e. on every request. A
    # connection broken by a server restart fails one statement; SQLAlchemy then
    # invalidates the whole pool and the next checkout connects afresh.
    kwargs.setdefault("pool_pre_ping", False)
    # Enough pooled connections for a worker's concurrent requests: past pool_size,
    # returned connections are closed, and opening a PostgreSQL connection (a forked
    # backend, authentication, cold catalog caches, no prepared statements) costs far
    # more CPU than the statements it serves. LIFO keeps the warmest connections busy.
    if kwargs.get("poolclass") is None:
        kwargs.setdefault("pool_size", env_int("HILT_DB_POOL_SIZE", 16, minimum=1))
        kwargs.setdefault("max_overflow", env_int("HILT_DB_MAX_OVERFLOW", 16, minimum=0))
        kwargs.setdefault("pool_use_lifo", True)
    return _mark(sa.create_engine(url, **kwargs))


# The schemes other tools accept for PostgreSQL; hilt's driver is psycopg (3).
_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")
_SUPPORTED = "hilt works with sqlite:///FILE and postgresql://USER@HOST/DB"


def driver_url(url: str) -> str:
    """``url`` with the driver hilt uses: ``postgres://`` and ``postgresql://`` (as
    psql, libpq and most tools accept them) become ``postgresql+psycopg://``. Any other
    database, or another PostgreSQL driver, is refused with one line rather than a
    driver's import error."""
    for scheme in _POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    if url.startswith(("sqlite://", "sqlite+pysqlite://")):
        return url
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise InputError(f"unsupported database URL scheme {scheme + '://'!r}; {_SUPPORTED}",
                     field="--db")


def _mark(engine: Engine) -> Engine:
    engine.update_execution_options(**{_HILT_ENGINE: True})
    engine_scope.record(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "do_connect")
    def _on_do_connect(*_args: Any) -> None:
        # Before the driver opens the file: sqlite3 would create a missing one.
        path = sqlite_file(engine)
        if path is not None and engine not in _MAY_CREATE and not path.exists():
            raise InputError(f"no hilt schema at {path}: the database file does not "
                             "exist; create it with: hilt init --db URL", field="--db")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
        except UnicodeDecodeError as exc:
            raise _damaged_schema(engine, exc) from None
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # A read-only transaction takes no lock up front: in WAL mode it reads a
        # snapshot while writers go on committing.
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _damaged_schema(engine: Engine, exc: UnicodeDecodeError) -> InputError:
    """SQLite reports a damaged schema with a message quoting the damaged bytes, which
    the driver then fails to decode as UTF-8: one error naming the file instead."""
    quoted = exc.object.decode("utf-8", "backslashreplace") \
        if isinstance(exc.object, bytes) else str(exc)
    detail = (quoted.strip().splitlines() or [str(exc)])[0]
    return InputError(f"{sqlite_file(engine) or engine.url.database}: the database file is "
                      f"damaged ({detail})", field="--db")


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


# PostgreSQL's SQLSTATE for a transaction chosen as a deadlock's victim (rolled back whole).
DEADLOCK_DETECTED = "40P01"


def is_deadlock(exc: BaseException) -> bool:
    return (isinstance(exc, sa.exc.OperationalError)
            and getattr(exc.orig, "sqlstate", None) == DEADLOCK_DETECTED)


def in_transaction_retrying_deadlocks(engine: Engine, work: Callable[[Session], Result],
                                      *, attempts: int = 3,
                                      pause_s: float = 0.05) -> Result:
    """``work(session)`` in :func:`transaction`, run again (up to ``attempts`` in all,
    after a short random pause) when PostgreSQL picks it as a deadlock's victim. The
    victim's transaction was rolled back whole, so a new attempt starts clean; ``work``
    must do nothing outside the session that a rollback would not undo."""
    for attempt in range(1, attempts + 1):
        try:
            with transaction(engine) as session:
                return work(session)
        except sa.exc.OperationalError as exc:
            if not is_deadlock(exc) or attempt == attempts:
                raise
            time.sleep(pause_s * attempt * (1 + random.random()))
    raise AssertionError("unreachable")  # the last attempt returns or raises


def read_only_engine(engine: Engine) -> Engine:
    """``engine`` (same pool) whose transactions only read: on SQLite they begin with a
    deferred ``BEGIN`` instead of taking the write lock."""
    return engine.execution_options(**{_READ_ONLY: True})


@contextlib.contextmanager
def read_snapshot(engine: Engine) -> Iterator[Session]:
    """A transaction for pure reads, rolled back at the end.

    On SQLite (WAL) it is a deferred ``BEGIN``: every statement in it sees the same
    snapshot, and a writer elsewhere is never made to wait for it, however long it
    stays open (a slow export client, a walk of the whole audit log). Only for reads:
    nothing in it is committed. On PostgreSQL it is an ordinary transaction."""
    # Closing the session rolls its transaction back.
    with Session(read_only_engine(engine)) as session:
        yield session


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema to the newest revision (``hilt init``); a schema
    made by a newer hilt is refused (it cannot be downgraded by this one)."""
    from alembic import command

    allow_create(engine)
    stored = current_revision(engine)
    if stored is not None and stored not in known_revisions():
        raise InputError(_newer_schema(stored), field="--db")
    command.upgrade(alembic_config(engine), "head")


@contextlib.contextmanager
def foreign_keys_off(connection: sa.Connection) -> Iterator[None]:
    """SQLite: foreign keys off while the block migrates, on again afterwards.

    A migration that changes a table SQLite cannot alter in place rebuilds it (alembic's
    batch mode: copy, drop the old table, rename the copy). With foreign keys on, the
    drop deletes the old table's rows first, which fails for every row another table
    refers to; SQLite's own recipe for such changes is to turn them off and run
    ``PRAGMA foreign_key_check`` before committing (:func:`check_foreign_keys`). The
    pragma is ignored inside a transaction, so it is set before the first one."""
    if not is_sqlite(connection.engine):
        yield
        return
    raw = connection.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if connection.in_transaction():
            connection.rollback()
        raw.execute("PRAGMA foreign_keys=ON")  # the connection goes back to the pool


def check_foreign_keys(ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any],
                       run_args: Mapping[str, Any]) -> None:
    """After each migration step, before it commits (alembic's ``on_version_apply``):
    refuse to commit a SQLite schema with a reference whose target does not exist."""
    conn = ctx.connection
    if conn is None or not is_sqlite(conn.engine):
        return
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if not broken:
        return
    table, rowid, parent = broken[0][0], broken[0][1], broken[0][2]
    # Every step of one `hilt init` runs in one transaction, so this error rolls back
    # the steps before this one too: the schema keeps the revision it had.
    raise InputError(
        f"migrating to revision {step.destination_revision_ids[0]} would leave "
        f"{len(broken)} row(s) referring to rows that do not exist (first: table "
        f"{table!r}, rowid {rowid}, referring to {parent!r}); nothing was changed, the "
        "schema keeps the revision it had before this upgrade. Find the rows with "
        "'PRAGMA foreign_key_check', repair or delete them, then run hilt init again",
        field="--db")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def known_revisions() -> list[str]:
    """This hilt's schema revisions, oldest first. Each migration file is named after its
    revision and the names are numbered in order, so listing the folder is enough: no
    migration module is imported (this runs on every command)."""
    return sorted(p.stem for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def head_revision() -> str:
    """The newest schema revision: the one this hilt's code reads and writes."""
    return known_revisions()[-1]


_NO_SCHEMA = "the database has no hilt schema ({}); create it with: hilt init --db URL"


def _newer_schema(stored: str) -> str:
    return (f"the database's schema was made by a newer hilt (revision {stored}; this "
            f"hilt knows revisions up to {head_revision()}); use that hilt or a newer one")


def check_revision(stored: str | None) -> None:
    """Refuse a database whose schema revision (``stored``) is not this hilt's newest."""
    revisions = known_revisions()
    head = revisions[-1]
    if stored == head:
        return
    if stored is None:
        raise InputError(_NO_SCHEMA.format("no schema revision is recorded"), field="--db")
    if stored in revisions:
        raise InputError(f"the database's schema is older than this hilt (revision {stored}, "
                         f"this hilt needs {head}); upgrade it with: hilt init --db URL",
                         field="--db")
    raise InputError(_newer_schema(stored), field="--db")


def _stored_revision(conn: sa.Connection) -> str | None:
    """The ``alembic_version`` row, read on the driver's connection: the SQLAlchemy
    connection is left without a transaction for its caller to begin."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute("SELECT version_num FROM alembic_version")
        rows = cursor.fetchall()
    except conn.dialect.loaded_dbapi.Error as exc:
        detail = (str(exc).strip().splitlines() or [repr(exc)])[0]
        raise InputError(_NO_SCHEMA.format(detail), field="--db") from None
    finally:
        cursor.close()
        raw.rollback()  # PostgreSQL: end the transaction the driver began for the read
    return " ".join(sorted(str(row[0]) for row in rows)) or None


def check_schema_on_connect(conn: sa.Connection) -> None:
    """The ``engine_connect`` listener the CLI installs for the length of a command:
    the first connection of each hilt engine reads the schema revision (one query) and
    refuses a database without hilt's schema or at another revision. Engines allowed
    to create their database (:func:`migrate`, ``create=True``) are exempt: they are
    there to make or upgrade the schema."""
    engine = conn.engine
    if not conn.get_execution_options().get(_HILT_ENGINE) or engine in _MAY_CREATE \
            or engine.pool in _SCHEMA_CHECKED:
        return
    try:
        check_revision(_stored_revision(conn))
    except InputError:
        conn.close()  # back to the pool now, not when the collector finds it
        raise
    _SCHEMA_CHECKED.add(engine.pool)
