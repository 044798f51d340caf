"""Two monitor runs, or two acknowledgements, at the same time (SQLite and PostgreSQL).

The second transaction is started while the first still holds its writes, and the first
commits only once the second waits on it: on PostgreSQL the second then runs into the
first's uncommitted rows (SQLite makes it wait at ``BEGIN IMMEDIATE`` instead)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.quality.drift.runner import acknowledge, list_alerts, run_monitors
from hilt.quality.drift.windows import DriftConfig
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.drift import DriftAlertRow

from . import scenario

CONFIG = DriftConfig(lookback_windows=scenario.DAYS, min_window_n=40)
NOW = scenario.T0 + timedelta(days=scenario.DAYS, hours=1)


def _wait_until_blocked(engine: Engine, timeout_s: float = 60.0) -> None:
    """Until another connection waits for a lock on the alerts (PostgreSQL); SQLite's
    second writer waits at BEGIN, which a short pause lets it reach."""
    if engine.dialect.name != "postgresql":
        time.sleep(0.3)
        return
    deadline = time.monotonic() + timeout_s
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query ILIKE '%drift_alerts%'")).scalar()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the second transaction never waited on the first")


def _alongside(engine: Engine, first: Callable[[Any], Any], second: Callable[[Any], Any]
               ) -> tuple[Any, Any]:
    """``first(session)`` and, while its transaction is open, ``second(session)`` in a
    transaction of its own; returns both results (an exception for a failed one)."""
    results: dict[str, Any] = {}

    def run_second() -> None:
        try:
            with transaction(engine) as s:
                results["second"] = second(s)
        except Exception as exc:  # the test asserts on it
            results["second"] = exc

    thread = threading.Thread(target=run_second)
    with transaction(engine) as s:
        results["first"] = first(s)
        thread.start()
        _wait_until_blocked(engine)
    thread.join(timeout=120)
    assert not thread.is_alive()
    return results["first"], results["second"]


def test_two_runs_at_once_store_each_alert_once_and_both_succeed(engine: Engine) -> None:
    scenario.base(engine)
    scenario.history(engine)
    first, second = _alongside(
        engine, lambda s: run_monitors(s, NOW, config=CONFIG, actor="scheduler"),
        lambda s: run_monitors(s, NOW, config=CONFIG, actor="cli"))
    # The second run used to fail on the alerts' primary key (PostgreSQL).
    assert not isinstance(second, Exception), second
    assert first and second == []
    with transaction(engine) as s:
        stored = s.execute(sa.select(DriftAlertRow.id)).scalars().all()
        logged = audit.entries(s, action="drift.alert")
        runs = audit.entries(s, action="drift.run")
        assert audit.verify(s).ok
    assert sorted(stored) == sorted(a.id for a in first)
    assert len(logged) == len(first) and len(runs) == 2


def test_two_acknowledgements_at_once_keep_the_first_and_append_the_second(
        engine: Engine) -> None:
    scenario.base(engine)
    scenario.history(engine)
    with transaction(engine) as s:
        run_monitors(s, NOW, config=CONFIG, actor="scheduler")
        alert_id = list_alerts(s, monitor="label_shift")[0]["id"]

    def first(s: Any) -> None:
        acknowledge(s, alert_id, actor="ann", note="retrained")
        s.flush()  # written, not yet committed

    _, second = _alongside(
        engine, first,
        lambda s: acknowledge(s, alert_id, actor="bob", note="checked the rubric"))
    assert not isinstance(second, Exception), second
    with transaction(engine) as s:
        row = s.get(DriftAlertRow, alert_id)
        assert row is not None
        again = [e.payload["again"] for e in audit.entries(s, action="drift.acknowledge")]
        # The later acknowledgement saw the first: it did not overwrite who and what.
        assert row.acknowledged_by == "ann"
        assert row.note is not None and row.note.startswith("retrained\n[bob, ")
        assert row.note.endswith("] checked the rubric")
    assert sorted(again) == [False, True]
