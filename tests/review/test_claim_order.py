"""Tasks of equal priority are served by SLA deadline (most overdue first), then age, then
id, by the one-statement claim on PostgreSQL and the general claim alike, from the
claimable index (no sort of the ready set); the adjudication queue pages in that order."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.review import queue, work
from hilt.review.adjudication import PENDING_ORDER, pending_rows
from hilt.review.queue import QueueConfig, claim_next
from hilt.review.tasks import create_task, id_source
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewTaskRow

from .helpers import add_reviewers, event, ingest, publish_examples

T0 = datetime(2030, 1, 1, tzinfo=UTC)
NO_GOLD_NEW = QueueConfig(gold_rate=0.0, lease_seconds=600, resume_active=False)
H = timedelta(hours=1)

# name -> (priority, deadline, created): equal priorities but for "urgent"; "c" and "d"
# tie on everything but their ids.
SHAPE = {"urgent": (7.0, T0 + 50 * H, T0 - H), "late_new": (5.0, T0 - 3 * H, T0 - H),
         "late_old": (5.0, T0 - 3 * H, T0 - 2 * H), "c": (5.0, T0 + H, T0 - 9 * H),
         "d": (5.0, T0 + H, T0 - 9 * H), "due_new": (5.0, T0 + H, T0 - 5 * H)}


def _tasks(engine: Engine, k: int) -> dict[str, str]:
    """Task id by name, shaped as :data:`SHAPE`; ids descend as the tasks are made, so
    that an order by id alone among equal priorities differs from the one expected."""
    publish_examples(engine)
    ingest(engine, [event(i) for i in range(len(SHAPE))])
    ids = {}
    count = itertools.count(10**6, -1)
    with transaction(engine) as s, id_source(lambda: f"{next(count):020x}"):
        for i, (name, (priority, due, created)) in enumerate(SHAPE.items()):
            tid = create_task(s, event_id=f"ev{i:05d}", rubric="harm", actor="lead",
                              overlap_k=k, now=T0)
            s.execute(sa.update(ReviewTaskRow).where(ReviewTaskRow.id == tid).values(
                priority=priority, sla_due_at=due, created_at=created))
            ids[name] = tid
    return ids


def _expected(ids: dict[str, str]) -> list[str]:
    tie = sorted([ids["c"], ids["d"]])
    return [ids["urgent"], ids["late_old"], ids["late_new"], *tie, ids["due_new"]]


def test_equal_priorities_are_served_by_deadline_then_age_then_id(engine: Engine) -> None:
    ids = _tasks(engine, k=2)
    add_reviewers(engine, ["one", "two"])
    # "one" through the request path (one statement on PostgreSQL), "two" through the
    # general claim in a transaction
    via_work = []
    for _ in SHAPE:
        got = work.next_task(engine, "one", now=T0, config=NO_GOLD_NEW)
        assert got is not None
        via_work.append(got.claim.task_id)
    via_session = []
    for _ in SHAPE:
        with transaction(engine) as s:
            claim = claim_next(s, "two", now=T0, config=NO_GOLD_NEW)
        assert claim is not None
        via_session.append(claim.task_id)
    assert via_work == via_session == _expected(ids)


def test_the_adjudication_queue_pages_in_the_same_order(engine: Engine) -> None:
    ids = _tasks(engine, k=1)
    with transaction(engine) as s:
        s.execute(sa.update(ReviewTaskRow).values(status="needs_adjudication"))
    seen: list[str] = []
    after = None
    with transaction(engine) as s:
        for _ in range(len(SHAPE)):
            rows, after = PENDING_ORDER.page(pending_rows(s, limit=3, after=after), 2)
            seen += [r.id for r in rows]
            if after is None:
                break
    assert seen == _expected(ids)  # every task once, in order


def _plan(engine: Engine) -> str:
    pick = sa.text(queue._candidates(engine.dialect.name, "open")).bindparams(
        sa.bindparam("pools", expanding=True))
    params = {"pools": ["default"], "rid": "nobody", "skills": "[]"}
    with engine.connect() as c:
        if engine.dialect.name == "sqlite":
            c.exec_driver_sql("ANALYZE")
            rows = c.execute(sa.text(f"EXPLAIN QUERY PLAN {pick.text}").bindparams(
                sa.bindparam("pools", expanding=True)), params).all()
            return "\n".join(str(r[-1]) for r in rows)
        # Whatever the table's size and statistics: the plan may read the index in the
        # claim's order, or must sort.
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            c.exec_driver_sql(f"SET LOCAL {setting} = off")
        rows = c.execute(sa.text(f"EXPLAIN {pick.text}").bindparams(
            sa.bindparam("pools", expanding=True)), params).all()
        c.rollback()
        return "\n".join(str(r[0]) for r in rows)


def test_the_claim_reads_its_order_from_the_index(engine: Engine) -> None:
    _tasks(engine, k=1)
    plan = _plan(engine)
    assert "ix_review_tasks_claimable" in plan, plan
    assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan
