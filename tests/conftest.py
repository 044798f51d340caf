"""Shared fixtures. Every test that takes ``engine`` runs on SQLite and on PostgreSQL.

PostgreSQL runs are isolated in a schema of their own (dropped at the end); set
``HILT_TEST_POSTGRES_URL`` to point elsewhere. Without a reachable server the PostgreSQL
half is skipped, unless ``HILT_REQUIRE_POSTGRES=1`` (as in CI), where it fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.store.db import make_engine, migrate
from hilt.store.tables import Base

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("HILT_TEST_POSTGRES_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def shared_data_dir() -> Path:
    """The public data sets in ``../shared/data`` (never copied into the repository)."""
    env = os.environ.get("HILT_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.exists():
        pytest.fail(f"shared data not found at {path} (set HILT_SHARED_DATA)")
    return path


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run first (the order is otherwise kept): with several
    workers, a long test collected last would run alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _api_replies_match_their_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every JSON reply a test receives from hilt's app matches the model its route
    declares in the OpenAPI schema (tests/api/conformance.py)."""
    from tests.api.conformance import check_every_reply

    check_every_reply(monkeypatch)


def _postgres_available() -> bool:
    try:
        eng = sa.create_engine(PG_URL)
        with eng.connect():
            pass
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    eng = make_engine(f"sqlite:///{path}")
    migrate(eng)
    eng.dispose()
    return path


def require_postgres() -> None:
    """Skip without a reachable server, unless ``HILT_REQUIRE_POSTGRES=1`` (CI): fail."""
    if not _postgres_available():
        if os.environ.get("HILT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required but not reachable at {PG_URL}")
        pytest.skip("PostgreSQL not reachable")


@contextlib.contextmanager
def empty_pg_schema(prefix: str = "hilt_test") -> Iterator[str]:
    """A new, empty PostgreSQL schema of its own, dropped afterwards."""
    require_postgres()
    schema = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(scope="session")
def _postgres_schema() -> Iterator[str]:
    with empty_pg_schema() as schema:
        eng = pg_engine(schema)
        migrate(eng)
        eng.dispose()
        yield schema


def pg_engine(schema: str, **kwargs: object) -> Engine:
    return make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"},
                       **kwargs)  # type: ignore[arg-type]


def pg_url_for(schema: str) -> str:
    """A URL that other processes can use to reach the same isolated schema."""
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database; the URL is usable from other processes."""
    if request.param == "sqlite":
        template = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "hilt.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    schema = request.getfixturevalue("_postgres_schema")
    eng = pg_engine(schema)
    empty_tables(eng)
    eng.dispose()
    yield pg_url_for(schema)


def empty_tables(engine: Engine) -> None:
    """Delete every row of hilt's tables on PostgreSQL, children before parents.

    Nearly every test leaves a handful of rows, and deleting them takes about 20 ms
    where TRUNCATE, which gives every table and index a new file, takes about 140 ms;
    over the ~900 PostgreSQL runs of the suite that is a minute of wall time. Should a
    delete fail (a foreign-key cycle), TRUNCATE ... CASCADE empties them all."""
    try:
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.exec_driver_sql(f'DELETE FROM "{table.name}"')
    except sa.exc.DBAPIError:
        with engine.begin() as conn:
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.exec_driver_sql(f"TRUNCATE {names} CASCADE")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def migrated_sqlite(path: Path | str) -> str:
    """An empty migrated SQLite database at ``path`` (its folder made if missing); returns
    its URL. For tests that need a database of their own outside the ``db_url`` pair."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path}"
    eng = make_engine(url)
    migrate(eng)
    eng.dispose()
    return url


def older_sqlite(path: Path | str) -> str:
    """A SQLite database at ``path`` migrated to the revision before this hilt's newest
    (a schema every command refuses until ``hilt init`` upgrades it); returns its URL."""
    from alembic import command

    from hilt.store.db import alembic_config, allow_create, known_revisions

    url = f"sqlite:///{path}"
    eng = make_engine(url)
    allow_create(eng)
    command.upgrade(alembic_config(eng), known_revisions()[-2])
    eng.dispose()
    return url


@pytest.fixture
def sqlite_engine(_sqlite_template: Path, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty SQLite database at ``tmp_path / "hilt.db"``: for a file whose
    checks come before any query, so that running them on PostgreSQL as well adds
    nothing. Such a file overrides ``engine`` with a fixture that returns this one."""
    path = tmp_path / "hilt.db"
    shutil.copyfile(_sqlite_template, path)
    eng = make_engine(f"sqlite:///{path}")
    yield eng
    eng.dispose()


_COPY_TYPE_NAMES = {"character varying": "varchar", "timestamp with time zone": "timestamptz",
                    "jsonb": "jsonb", "bigint": "int8"}


def copy_type_names(engine: Engine, table: str) -> dict[str, str]:
    """PostgreSQL: each column of ``table`` with its type as binary COPY names it."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = :t AND table_schema = current_schema()"), {"t": table}).all()
    return {name: _COPY_TYPE_NAMES[kind] for name, kind in rows}
