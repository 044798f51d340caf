"""Advisory locks are per schema: two installations in one PostgreSQL database do not
block or skip each other's audit sealing and periodic tasks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.ops import periodic
from hilt.store import audit
from hilt.store.db import migrate
from hilt.store.pg_locks import SCHEMA_KEY, lock_params
from tests.conftest import empty_pg_schema, pg_engine


@pytest.fixture
def two_schemas(_postgres_schema: str) -> Iterator[tuple[Engine, Engine]]:
    with empty_pg_schema("hilt_test_other") as other:
        first, second = pg_engine(_postgres_schema), pg_engine(other)
        migrate(second)
        try:
            yield first, second
        finally:
            first.dispose()
            second.dispose()


def test_a_periodic_task_lock_held_in_one_schema_leaves_another_free(
        two_schemas: tuple[Engine, Engine]) -> None:
    first, second = two_schemas
    with Session(first) as a, a.begin():
        assert periodic._lock(a, "expire-leases")
        with Session(first) as same, same.begin():
            assert not periodic._lock(same, "expire-leases")  # the same schema waits
            assert periodic._lock(same, "other-task")  # another task does not
        with Session(second) as b, b.begin():
            assert periodic._lock(b, "expire-leases")


def test_sealing_in_one_schema_does_not_skip_another(
        two_schemas: tuple[Engine, Engine]) -> None:
    first, second = two_schemas
    with Session(second) as s, s.begin():  # a session that does not seal after commit
        audit.append(s, actor="t", action="a", entity_type="e", entity_id="x")
    with Session(first) as a, a.begin():
        got = a.execute(sa.text(f"SELECT pg_try_advisory_xact_lock(:lock_space, {SCHEMA_KEY})"),
                        lock_params(audit._PG_ADVISORY_KEY)).scalar()
        assert got is True  # the first schema's chain lock is held
        assert audit.seal_after_commit(second, wait=False) == 1

