"""``hilt init`` upgrades a database holding data from every earlier schema revision, on
SQLite and PostgreSQL, and the upgraded schema is exactly the one a fresh ``hilt init``
makes. Each older database gets one row in every table it has, every reference pointing
at a row that exists, so a migration that rebuilds a table others refer to (SQLite's
batch mode) meets referenced rows."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from hilt.store.db import (
    alembic_config,
    allow_create,
    current_revision,
    head_revision,
    known_revisions,
    make_engine,
)
from tests.ops.climain import run_main

OLDER = known_revisions()[:-1]


@contextmanager
def _database(kind: str, tmp_path: Path, name: str) -> Iterator[str]:
    """An empty database's URL (a SQLite file, or a PostgreSQL schema of its own)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    from tests.conftest import empty_pg_schema, pg_url_for

    with empty_pg_schema("hilt_upg") as schema:
        yield pg_url_for(schema)


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    allow_create(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def _value(column: sa.Column[Any], row_tag: str) -> Any:
    """A value of ``column``'s type (only the type matters: the schema has no checks)."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return True
    if isinstance(kind, sa.Integer):
        return 1
    if isinstance(kind, sa.Float | sa.Numeric):
        return 0.5
    if isinstance(kind, sa.DateTime):
        return datetime(2025, 1, 1, tzinfo=UTC)
    if isinstance(kind, sa.Date):
        return datetime(2025, 1, 1).date()
    if isinstance(kind, sa.JSON):
        return ["x"]
    if isinstance(kind, sa.LargeBinary):
        return b"x"
    if isinstance(kind, sa.Uuid):
        return uuid.uuid4()
    length = getattr(kind, "length", None) or 64
    return f"{row_tag}-{column.name}"[:length]


def fill_every_table(engine: Engine) -> dict[str, int]:
    """One row in every table of the database as it is (``alembic_version`` aside),
    parents first; every foreign key refers to its parent's row. Returns the counts."""
    meta = sa.MetaData()
    meta.reflect(engine)
    rows: dict[str, dict[str, Any]] = {}
    with engine.begin() as conn:
        for table in meta.sorted_tables:
            if table.name == "alembic_version":
                continue
            row = {c.name: _value(c, table.name) for c in table.columns}
            for fk in table.foreign_key_constraints:
                parent = rows.get(fk.referred_table.name)
                for element in fk.elements:
                    target = parent[element.column.name] if parent is not None \
                        and fk.referred_table is not table else None
                    row[element.parent.name] = target
            conn.execute(table.insert(), row)
            rows[table.name] = row
    return {name: 1 for name in rows}


def _counts(engine: Engine, tables: dict[str, int]) -> dict[str, int]:
    with engine.connect() as conn:
        return {name: conn.execute(sa.text(f'SELECT COUNT(*) FROM "{name}"')).scalar_one()
                for name in tables}


def _plain(value: Any) -> Any:
    """``value`` with SQL expressions (an index's ``WHERE``) as their text."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, sa.sql.ClauseElement):
        return str(value)
    return value


def schema_of(engine: Engine) -> dict[str, Any]:
    """Everything reflection tells about the schema, in a comparable form; on SQLite
    also the stored ``CREATE`` statements."""
    inspector = sa.inspect(engine)
    tables: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        tables[name] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                        for c in inspector.get_columns(name)],
            "pk": inspector.get_pk_constraint(name),
            "fks": sorted(repr(_plain(fk)) for fk in inspector.get_foreign_keys(name)),
            "indexes": sorted(repr(_plain(ix)) for ix in inspector.get_indexes(name)),
            "uniques": sorted(repr(_plain(u))
                              for u in inspector.get_unique_constraints(name)),
        }
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            tables["sqlite_master"] = [tuple(r) for r in conn.exec_driver_sql(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")]
    return tables


def _fresh_schema(kind: str, tmp_path: Path) -> dict[str, Any]:
    with _database(kind, tmp_path, "fresh") as url:
        code, out = run_main("init", "--db", url)
        assert code == 0, out
        with _engine(url) as engine:
            return schema_of(engine)


def _upgrade_populated(kind: str, tmp_path: Path, revision: str,
                       check: Callable[[Engine, dict[str, int]], None]) -> None:
    with _database(kind, tmp_path, f"at-{revision}") as url:
        with _engine(url) as engine:
            command.upgrade(alembic_config(engine), revision)
            tables = fill_every_table(engine)
        code, out = run_main("init", "--db", url)
        assert code == 0, f"upgrade from {revision}: {out}"
        with _engine(url) as engine:
            assert current_revision(engine) == head_revision()
            check(engine, tables)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_populated_database_upgrades_from_every_earlier_revision_to_the_fresh_schema(
        kind: str, tmp_path: Path) -> None:
    fresh = _fresh_schema(kind, tmp_path)

    def check(engine: Engine, tables: dict[str, int]) -> None:
        assert _counts(engine, tables) == tables  # every row survived
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        assert schema_of(engine) == fresh

    for revision in OLDER:
        _upgrade_populated(kind, tmp_path, revision, check)


def test_a_token_of_a_reviewer_survives_the_reviewers_table_rebuild(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with _engine(url) as engine:
        command.upgrade(alembic_config(engine), "0013_web_sessions")
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO reviewers (id, display_name, role, pools, skills, status, "
                "active, created_at) VALUES ('ana', 'ana', 'reviewer', '[\"default\"]', "
                "'[]', 'onboarding', 1, '2025-01-01 00:00:00')"))
            conn.execute(sa.text(
                "INSERT INTO api_tokens (id, token_hash, role, name, reviewer_id, "
                "created_at) VALUES ('tk_1', 'h', 'reviewer', '', 'ana', "
                "'2025-01-01 00:00:00')"))
    code, out = run_main("init", "--db", url)
    assert code == 0, out
    with _engine(url) as engine, engine.connect() as conn:
        assert conn.execute(sa.text("SELECT reviewer_id FROM api_tokens")).all() == [("ana",)]
        assert conn.execute(sa.text("SELECT signoff_roles FROM reviewers")).all() == [("[]",)]
        # foreign keys are back on for the pooled connection after the migration
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1


def test_an_upgrade_that_would_leave_a_dangling_reference_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with _engine(url) as engine:
        command.upgrade(alembic_config(engine), "0013_web_sessions")
        with engine.connect() as conn:
            # a token of a reviewer that does not exist, written with foreign keys off
            conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                "PRAGMA foreign_keys=OFF")
            conn.exec_driver_sql(
                "INSERT INTO api_tokens (id, token_hash, role, name, reviewer_id, "
                "created_at) VALUES ('tk_1', 'h', 'reviewer', '', 'ghost', "
                "'2025-01-01 00:00:00')")
            conn.commit()
            conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                "PRAGMA foreign_keys=ON")
    code, out = run_main("init", "--db", url)
    assert code == 2
    assert out.startswith("error: field '--db': migrating to revision "
                          "0014_reviewer_signoff_roles would leave 1 row(s) referring to "
                          "rows that do not exist (first: table 'api_tokens'"), out
    assert "nothing was changed, the schema keeps the revision it had" in out
    assert len(out.strip().splitlines()) == 1
    with _engine(url) as engine:
        assert current_revision(engine) == "0013_web_sessions"


def test_a_forked_gate_chain_stops_the_upgrade_with_one_line_saying_what_to_do(
        tmp_path: Path) -> None:
    from hilt.store.db import session_factory
    from hilt.store.tables.base import utcnow
    from hilt.store.tables.gate import GateDecisionRow

    def decision(hash_: str, supersedes: str | None) -> GateDecisionRow:
        return GateDecisionRow(hash=hash_, created_at=utcnow(), outcome="block",
                               policy_id="p", policy_version="1", supersedes=supersedes,
                               stored_by="x", record={})

    url = f"sqlite:///{tmp_path / 'old.db'}"
    with _engine(url) as engine:
        command.upgrade(alembic_config(engine), "0011_claimable_index_hot")
        with session_factory(engine).begin() as s:
            s.add(decision("a" * 64, None))
            s.flush()
            s.add(decision("b" * 64, "a" * 64))
            s.flush()
            s.add(decision("c" * 64, "a" * 64))
    code, out = run_main("init", "--db", url)
    assert code == 2, out
    assert out.splitlines() == [
        "error: field '--db': cannot upgrade: gate decisions superseded more than once "
        "(two sign-offs at once forked the chain and one sign-off was hidden): "
        f"{'a' * 64} (2 successors: keep {'b' * 64}, remove {'c' * 64}). Back the database "
        "up, then for each successor to remove delete its gate_signoffs rows "
        "(resulting_hash = it) and its gate_decisions row, run hilt init again, and sign "
        "the removed sign-offs off again on the kept decision"]
    with _engine(url) as engine:
        assert current_revision(engine) == "0011_claimable_index_hot"
        with engine.begin() as conn:  # what the message says to do
            conn.execute(sa.text("DELETE FROM gate_decisions WHERE hash = :h"),
                         {"h": "c" * 64})
    code, out = run_main("init", "--db", url)
    assert code == 0, out


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_token_made_before_expiry_existed_never_expires_after_the_upgrade(
        kind: str, tmp_path: Path) -> None:
    from hilt.access import authenticate, list_tokens
    from hilt.canonical import sha256_hex
    from hilt.store.db import transaction

    secret = "hilt_made-before-0015"
    with _database(kind, tmp_path, "tokens") as url:
        with _engine(url) as engine:
            command.upgrade(alembic_config(engine), "0014_reviewer_signoff_roles")
            with engine.begin() as conn:
                conn.execute(sa.text(
                    "INSERT INTO api_tokens (id, token_hash, role, name, created_at) "
                    "VALUES ('tk_old', :h, 'service', 'old', :at)"),
                    {"h": sha256_hex(secret), "at": datetime(2025, 1, 1, tzinfo=UTC)})
        code, out = run_main("init", "--db", url)
        assert code == 0, out
        with _engine(url) as engine:
            assert current_revision(engine) == head_revision()
            with engine.connect() as conn:
                assert conn.execute(sa.text(
                    "SELECT expires_at, last_used_at FROM api_tokens")).all() == [
                    (None, None)]
            with transaction(engine) as s:
                principal = authenticate(s, secret)
                [listed] = list_tokens(s)
            assert principal is not None and principal.token_id == "tk_old"
            assert (listed["status"], listed["expires_at"], listed["last_used_at"]) == (
                "active", "never", None)
