"""How late escalated work is shows wherever a lead looks: an escalated task holds a
later deadline, so the task record, the adjudication queue and the metrics read the first
deadline it missed (``sla_breached_at``), not the current one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.ops.metrics import DatabaseCollector
from hilt.review.adjudication import pending
from hilt.review.tasks import create_task
from hilt.review.triage import record_sla_breaches
from hilt.review.views import task_detail
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewTaskRow
from hilt.web.dashboard import queue_overview

from .helpers import event, ingest, publish_examples

T0 = datetime(2020, 1, 1, tzinfo=UTC)  # long past: the views read the real clock


def test_an_escalated_task_shows_how_late_it_is(engine: Engine) -> None:
    publish_examples(engine)
    ingest(engine, [event(0, "tell me about tides please", response="facts")])
    with transaction(engine) as s:
        task_id = create_task(s, event_id="ev00000", rubric="harm", actor="lead",
                              severity="sev2", overlap_k=1, now=T0)
    with transaction(engine) as s:
        due = s.get_one(ReviewTaskRow, task_id).sla_due_at
        late = due + timedelta(hours=1)
        assert record_sla_breaches(s, late).new == [task_id]
        task = s.get_one(ReviewTaskRow, task_id)
        # escalated a step, with a deadline after the moment it was noticed
        assert task.sla_due_at > late
        task.sla_due_at = datetime.now(UTC) + timedelta(hours=1)  # not yet due again
    with transaction(engine) as s:  # the lead page's queue table
        (pool,) = queue_overview(s, datetime.now(UTC))
        assert (pool["overdue"], pool["late_since"]) == (1, due)
    with transaction(engine) as s:
        s.get_one(ReviewTaskRow, task_id).status = "needs_adjudication"
    with transaction(engine) as s:
        detail = task_detail(s, task_id)
        (queued,) = pending(s)
    years = (datetime.now(UTC) - due).total_seconds() / 3600
    for shown in (detail, queued):
        assert shown["overdue_hours"] is not None
        assert abs(shown["overdue_hours"] - years) < 1.0
    assert queued["sla_breached_at"] == detail["sla_breached_at"] is not None
    samples = {(m.name, tuple(sorted(sample.labels.items()))): sample.value
               for m in DatabaseCollector(engine).collect() for sample in m.samples}
    open_late = [v for (name, _), v in samples.items() if name == "hilt_sla_breached_open"]
    assert sum(open_late) == 1  # counted although its current deadline is ahead


def test_a_task_within_its_sla_is_not_overdue(engine: Engine) -> None:
    publish_examples(engine)
    ingest(engine, [event(0, "tell me about tides please", response="facts")])
    with transaction(engine) as s:
        task_id = create_task(s, event_id="ev00000", rubric="harm", actor="lead",
                              severity="sev2", overlap_k=1)
        detail = task_detail(s, task_id)
        count = s.execute(sa.select(sa.func.count()).select_from(ReviewTaskRow)).scalar_one()
    assert detail["overdue_hours"] is None and count == 1
