"""Connections of the one-statement path: kept checked out between calls, up to half the
pool; closed on dispose; given back when not reusable or past the cap."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.store import pg_statements
from hilt.store.pg_statements import Statements, run_statement
from tests.conftest import pg_engine

PID = "SELECT pg_backend_pid()"


@pytest.fixture
def pg(_postgres_schema: str) -> Iterator[Engine]:
    eng = pg_engine(_postgres_schema, pool_size=4, max_overflow=4)
    yield eng
    eng.dispose()


def _alive(engine: Engine, pid: int) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity "
                                         "WHERE pid = :p"), {"p": pid}).scalar())


def test_a_kept_connection_serves_the_next_call(pg: Engine) -> None:
    (first,) = run_statement(pg, PID, {})
    (second,) = run_statement(pg, PID, {})
    assert first == second
    assert pg.pool.checkedout() == 1  # type: ignore[attr-defined]
    # the pool's own connections are separate and still work in transactions
    with pg.begin() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1


def test_at_most_half_the_pool_is_kept(pg: Engine) -> None:
    held = [Statements(pg) for _ in range(4)]
    pids = {s.run(PID, {})[0] for s in held}
    assert len(pids) == 4
    for s in held:
        s.close()
    assert pg.pool.checkedout() == 2  # type: ignore[attr-defined]


def test_dispose_closes_kept_connections(pg: Engine) -> None:
    (pid,) = run_statement(pg, PID, {})
    pg.dispose()
    assert not _alive(pg, pid)
    (fresh,) = run_statement(pg, PID, {})  # the engine still works afterwards
    assert fresh != pid


def test_a_connection_left_in_a_transaction_is_rolled_back_and_not_kept(pg: Engine) -> None:
    with Statements(pg) as stmts:
        (pid,) = stmts.run(PID, {})
        stmts._cursor.execute("BEGIN")  # nothing in hilt does this; a guard
    assert pg.pool.checkedout() == 0  # type: ignore[attr-defined]
    (again,) = run_statement(pg, PID, {})
    assert again == pid  # back through the pool, out of its transaction
    with pg.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1


def test_a_forked_process_does_not_use_the_parents_connections(
        pg: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    (parent,) = run_statement(pg, PID, {})
    monkeypatch.setattr(pg_statements.os, "getpid", lambda: -1)  # as in a child process
    (child,) = run_statement(pg, PID, {})
    assert child != parent
    assert pg_statements._INHERITED and parent in {
        fairy.driver_connection.info.backend_pid
        for fairy, _ in pg_statements._INHERITED[-1].items}
    pg.dispose()  # the child's own connections close; the parent's stay untouched
    assert _alive(pg, parent) and not _alive(pg, child)


def test_placeholders_become_postgres_ones_once() -> None:
    query, names = pg_statements.native(
        "SELECT %(a)s, %(b)s WHERE x = %(a)s AND y LIKE 'p%%'")
    assert query == "SELECT $1, $2 WHERE x = $1 AND y LIKE 'p%'"
    assert names == ("a", "b")
    with pytest.raises(ValueError, match=r"\$"):
        pg_statements.native("SELECT $1")


def test_a_long_statement_runs_with_its_parameters(pg: Engine) -> None:
    """Longer than psycopg caches (4,096 bytes), more parameters than it caches (50),
    names repeated and a literal percent sign."""
    names = [f"p{i}" for i in range(60)]
    sql = ("SELECT " + ", ".join(f"CAST(%({n})s AS int) + CAST(%(p0)s AS int)" for n in names)
           + ", 'a%%b' /*" + " " * 4096 + "*/")
    row = run_statement(pg, sql, {n: i for i, n in enumerate(names)})
    assert list(row) == list(range(60)) + ["a%b"]
