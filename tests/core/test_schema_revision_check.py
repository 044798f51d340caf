"""Commands open a database only at this hilt's schema revision: an older schema is named
with its upgrade (``hilt init``), a newer one is refused, and neither is changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from hilt.store.db import (
    alembic_config,
    allow_create,
    check_schema_on_connect,
    current_revision,
    head_revision,
    known_revisions,
    make_engine,
)
from tests.ops.climain import run_main

PREVIOUS = known_revisions()[-2]
NEWER = "9999_from_a_newer_hilt"


def _migrate_to(url: str, revision: str, **kwargs: object) -> None:
    engine = make_engine(url, **kwargs)  # type: ignore[arg-type]
    allow_create(engine)
    command.upgrade(alembic_config(engine), revision)
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def older_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database migrated to the revision before this hilt's newest."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        _migrate_to(url, PREVIOUS)
        yield url
        return
    from tests.conftest import PG_URL, empty_pg_schema, pg_url_for

    with empty_pg_schema("hilt_old") as schema:
        _migrate_to(PG_URL, PREVIOUS, connect_args={"options": f"-csearch_path={schema}"})
        yield pg_url_for(schema)


def _revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def _set_revision(url: str, revision: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def test_the_listed_revisions_are_alembics_history() -> None:
    script = ScriptDirectory.from_config(alembic_config(make_engine("sqlite://")))
    history = [s.revision for s in reversed(list(script.walk_revisions()))]
    assert known_revisions() == history
    assert head_revision() == script.get_current_head()


def test_an_older_schema_is_refused_until_hilt_init_upgrades_it(older_database: str) -> None:
    for args in (["models", "list"], ["suite", "list"], ["audit", "verify"]):
        code, output = run_main(*args, "--db", older_database)
        assert code == 2, (args, output)
        assert output.strip().splitlines() == [
            f"error: field '--db': the database's schema is older than this hilt (revision "
            f"{PREVIOUS}, this hilt needs {head_revision()}); upgrade it with: "
            "hilt init --db URL"], args
    assert _revision(older_database) == PREVIOUS  # the refusal changed nothing
    code, output = run_main("init", "--db", older_database)
    assert code == 0 and head_revision() in output, output
    code, output = run_main("models", "list", "--db", older_database)
    assert code == 0 and output.strip() == "[]", output


def test_a_schema_from_a_newer_hilt_is_refused_even_by_init(db_url: str) -> None:
    _set_revision(db_url, NEWER)
    try:
        for args in (["models", "list"], ["init"]):
            code, output = run_main(*args, "--db", db_url)
            assert code == 2, (args, output)
            assert output.strip().splitlines() == [
                f"error: field '--db': the database's schema was made by a newer hilt "
                f"(revision {NEWER}; this hilt knows revisions up to {head_revision()}); "
                "use that hilt or a newer one"], args
        assert _revision(db_url) == NEWER
    finally:
        _set_revision(db_url, head_revision())


def test_a_database_without_hilt_tables_is_named_so(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (body TEXT)")
    engine.dispose()
    code, output = run_main("models", "list", "--db", f"sqlite:///{path}")
    assert code == 2 and output.strip().splitlines() == [
        "error: field '--db': the database has no hilt schema (no such table: "
        "alembic_version); create it with: hilt init --db URL"]


def test_the_revision_is_read_once_per_engine(db_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import hilt.store.db as db

    reads: list[str | None] = []
    real = db._stored_revision

    def counted(conn: sa.Connection) -> str | None:
        reads.append(real(conn))
        return reads[-1]

    monkeypatch.setattr(db, "_stored_revision", counted)
    engine = make_engine(db_url)
    try:
        for _ in range(3):
            with engine.connect() as conn:
                check_schema_on_connect(conn)
        with db.read_only_engine(engine).connect() as conn:  # an option engine: same pool
            check_schema_on_connect(conn)
    finally:
        engine.dispose()
    assert reads == [head_revision()]
    plain = sa.create_engine("sqlite://")  # not made by hilt: not a hilt database
    with plain.connect() as conn:
        check_schema_on_connect(conn)
    assert len(reads) == 1


def test_commands_leave_no_check_behind(tmp_path: Path) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from hilt.cli import _check_schema

    run_main("models", "list", "--db", f"sqlite:///{tmp_path / 'missing.db'}")
    assert not event.contains(Engine, "engine_connect", _check_schema)
