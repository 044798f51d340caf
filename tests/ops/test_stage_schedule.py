"""The scheduler runs the stages' periodic work (drift, quality) once per period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.ops.builtin import periodic_tasks
from hilt.ops.periodic import run_periodic
from hilt.store.tables.core import AuditRow


def test_drift_monitors_are_scheduled_and_run_once_per_period(engine: Engine) -> None:
    task = next(t for t in periodic_tasks() if t.name == "drift.monitors")
    now = datetime(2026, 11, 20, tzinfo=UTC)
    assert run_periodic(engine, task, now=now) == {"drift_alerts": 0}
    assert run_periodic(engine, task, now=now + timedelta(seconds=10)) is None
    with engine.connect() as conn:
        runs = conn.execute(sa.select(sa.func.count()).select_from(AuditRow)
                            .where(AuditRow.action == "drift.run")).scalar_one()
    assert runs == 1


def test_quality_refresh_and_statuses_are_scheduled(engine: Engine) -> None:
    from hilt.access import add_reviewer
    from hilt.store.db import transaction
    from hilt.store.tables.core import ReviewerRow

    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="r1", role="reviewer")
    tasks = {t.name: t for t in periodic_tasks()}
    now = datetime(2026, 11, 20, tzinfo=UTC)
    assert run_periodic(engine, tasks["quality.refresh"], now=now) == {
        "rubrics": 0, "status_changes": 0}
    assert run_periodic(engine, tasks["quality.statuses"], now=now) == {"status_changes": 0}
    with engine.connect() as conn:
        assert conn.execute(sa.select(ReviewerRow.status)).scalar_one() == "onboarding"
