"""Database errors raised by the drivers themselves (paths that use a raw cursor) are one
``error:`` line and exit 2, like those SQLAlchemy wraps."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import psycopg
import pytest

from hilt.cli import database_error_message
from tests.conftest import empty_pg_schema, pg_url_for

from .climain import run_main


def test_driver_errors_get_one_line() -> None:
    missing = sqlite3.OperationalError("no such table: audit_log")
    assert database_error_message(missing) == (
        "error: the database has no hilt schema (no such table: audit_log); "
        "create it with: hilt init --db URL")
    undefined = psycopg.errors.UndefinedTable(
        'relation "audit_pending" does not exist\nLINE 1: DELETE FROM audit_pending')
    message = database_error_message(undefined)
    assert message is not None and message.startswith("error: the database has no hilt")
    assert "\n" not in message
    assert database_error_message(psycopg.OperationalError("connection refused")) == \
        "error: database: connection refused"
    assert database_error_message(ValueError("x")) is None


@pytest.fixture
def empty_postgres_schema() -> Iterator[str]:
    with empty_pg_schema("hilt_empty") as schema:
        yield pg_url_for(schema)


@pytest.mark.postgres
def test_audit_verify_on_a_postgres_database_without_the_schema(
        empty_postgres_schema: str) -> None:
    code, output = run_main("audit", "verify", "--db", empty_postgres_schema)
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: field '--db': the database has no hilt schema")
    assert "hilt init" in lines[0]
