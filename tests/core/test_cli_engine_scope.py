"""A command run inside a longer-lived process closes the database connections it
opened: a hundred in-process commands against PostgreSQL must not exhaust its slots."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.store import engine_scope
from hilt.store.db import make_engine, migrate

psutil = pytest.importorskip("psutil")


def _postgres_connections() -> int:
    return sum(1 for c in psutil.Process().net_connections(kind="tcp")
               if c.raddr and c.raddr.port == 5432)


@pytest.mark.postgres
def test_in_process_commands_leave_no_pooled_connection_behind(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("the connection slots in question are PostgreSQL's")
    engine = make_engine(db_url, create=True)
    migrate(engine)
    engine.dispose()
    before = _postgres_connections()
    runner = CliRunner()
    for _ in range(5):
        result = runner.invoke(app, ["models", "list", "--db", db_url])
        assert result.exit_code == 0, result.output
    assert _postgres_connections() == before
    assert engine_scope._SCOPES == []  # every command's scope ended with it


def test_engines_made_in_a_scope_are_disposed_with_it() -> None:
    disposed: list[str] = []

    class Engine:
        def __init__(self, name: str) -> None:
            self.name = name

        def dispose(self) -> None:
            disposed.append(self.name)

    outer = engine_scope.collect_engines()
    engine_scope.record(Engine("outer"))
    inner = engine_scope.collect_engines()
    engine_scope.record(Engine("inner"))
    engine_scope.dispose_engines(inner)
    assert disposed == ["inner"]
    engine_scope.record(Engine("outer-2"))  # back in the outer scope
    engine_scope.dispose_engines(outer)
    assert sorted(disposed) == ["inner", "outer", "outer-2"]
    engine_scope.record(Engine("none"))  # outside any scope: not kept
    assert engine_scope._SCOPES == []
