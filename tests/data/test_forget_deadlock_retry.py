"""An erasure that PostgreSQL picks as a deadlock's victim is rolled back whole and run
again, by ``hilt forget`` and ``POST /v1/datasets/forget-subject`` alike; other errors are
not retried."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from data_factories import garden_event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import hilt.data.forget as forget_module
from hilt.data.forget import forget
from hilt.events.ingest import ingest_events
from hilt.store import audit
from hilt.store.db import DEADLOCK_DETECTED, in_transaction_retrying_deadlocks, transaction
from hilt.store.tables.core import AuditRow, EventRow


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _failing_once(sqlstate: str, calls: list[int]) -> Any:
    """erase_subject that does its work, then fails once as ``sqlstate`` would."""
    real = forget_module.erase_subject

    def erase(session: Session, *args: Any, **kwargs: Any) -> Any:
        result = real(session, *args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            session.flush()  # the writes reach the database, to be rolled back
            raise sa.exc.OperationalError("DELETE …", {}, _Orig(sqlstate))
        return result
    return erase


def _events(engine: Engine) -> None:
    ingest_events(engine, [garden_event(i, ("bob", "amy")[i % 2], marked="bob",
                                        mark="quokka") for i in range(4)], actor="test")


def _forget_entries(engine: Engine) -> int:
    with transaction(engine) as s:
        audit.seal(s)  # entries left pending by a writer that did not seal them
    with transaction(engine) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(AuditRow)
                        .where(AuditRow.action == "subject.forget")) or 0


def test_a_deadlocked_erasure_is_run_again_and_recorded_once(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _events(engine)
    calls: list[int] = []
    monkeypatch.setattr(forget_module, "erase_subject",
                        _failing_once(DEADLOCK_DETECTED, calls))
    result = forget(engine, "bob", actor="lead")
    assert len(calls) == 2 and result.ok and result.events_erased == 2
    assert _forget_entries(engine) == 1
    with transaction(engine) as s:
        erased = s.scalars(sa.select(EventRow.id).where(EventRow.erased_at.is_not(None)))
        assert sorted(erased) == ["ev0", "ev2"]
        assert audit.verify(s).ok


def test_another_database_error_is_not_retried_and_leaves_nothing(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _events(engine)
    calls: list[int] = []
    monkeypatch.setattr(forget_module, "erase_subject", _failing_once("53300", calls))
    with pytest.raises(sa.exc.OperationalError):
        forget(engine, "bob", actor="lead")
    assert len(calls) == 1 and _forget_entries(engine) == 0
    with transaction(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(EventRow)
                        .where(EventRow.erased_at.is_not(None))) == 0


def test_a_deadlock_on_every_attempt_is_raised_after_the_last(engine: Engine) -> None:
    tries: list[int] = []

    def always(session: Session) -> None:
        tries.append(1)
        raise sa.exc.OperationalError("x", {}, _Orig(DEADLOCK_DETECTED))

    with pytest.raises(sa.exc.OperationalError):
        in_transaction_retrying_deadlocks(engine, always, attempts=3, pause_s=0)
    assert len(tries) == 3


def test_a_real_deadlock_victim_is_run_again(engine: Engine) -> None:
    """Two transactions lock two events in opposite orders. The retried one waits the
    shorter deadlock_timeout, so PostgreSQL makes it the victim; its second attempt
    runs after the other has committed."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time")
    _events(engine)
    both_hold_one = threading.Barrier(2, timeout=10)
    attempts: list[int] = []

    def lock(session: Session, event_id: str) -> None:
        session.execute(sa.select(EventRow.id).where(EventRow.id == event_id)
                        .with_for_update())

    def retried(session: Session) -> str:
        attempts.append(1)
        session.execute(sa.text("SET LOCAL deadlock_timeout = '50ms'"))
        lock(session, "ev0")
        if len(attempts) == 1:
            both_hold_one.wait()
        lock(session, "ev1")
        return "done"

    def other() -> None:
        with transaction(engine) as s:
            s.execute(sa.text("SET LOCAL deadlock_timeout = '10s'"))
            lock(s, "ev1")
            both_hold_one.wait()
            lock(s, "ev0")

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert in_transaction_retrying_deadlocks(engine, retried) == "done"
    finally:
        thread.join(timeout=30)
    assert len(attempts) == 2
