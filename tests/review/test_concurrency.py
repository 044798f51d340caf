"""16 workers, each with its own engine and connection, drain the queue concurrently."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.review import work as review_work
from hilt.review.queue import QueueConfig, claim_next
from hilt.review.reviews import Submission, submit_review
from hilt.review.tasks import insert_tasks, task_row
from hilt.store import audit
from hilt.store.db import make_engine, transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.review import AssignmentRow, ReviewRow, ReviewTaskRow

from .helpers import add_reviewers, event, ingest, publish_examples

WORKERS, TASKS, K = 16, 40, 3
ANSWERS = {"verdict": "safe", "refusal": "complies", "helpfulness": 4}


@pytest.mark.parametrize("via", ["transaction", "work", "next"])
def test_sixteen_workers_drain_the_queue_without_double_assignment(db_url: str, via: str
                                                                    ) -> None:
    setup = make_engine(db_url)
    publish_examples(setup)
    ingest(setup, [event(i) for i in range(TASKS)])
    reviewers = [f"w{i:02d}" for i in range(WORKERS)]
    add_reviewers(setup, reviewers)
    now = utcnow()
    with transaction(setup) as s:
        insert_tasks(s, [task_row(event_id=f"ev{i:05d}", pool="default", severity=2,
                                  rubric_id="harm", rubric_version=1, overlap_k=K, now=now)
                         for i in range(TASKS)], actor="t", action="task.create", payload={})
    setup.dispose()
    errors: list[BaseException] = []
    # Through hilt.review.work a quarter of the claims draw gold (and find none): those
    # take the general path, the rest the one-statement path on PostgreSQL ("next":
    # each submission and the following claim in one statement).
    config = QueueConfig(gold_rate=0.0 if via == "transaction" else 0.25)
    start = threading.Barrier(WORKERS)

    def drain(engine: Engine, reviewer: str) -> None:
        if via == "transaction":
            while True:
                with transaction(engine) as s:
                    claim = claim_next(s, reviewer, config=config)
                if claim is None:
                    return
                with transaction(engine) as s:
                    submit_review(s, claim.task_id, reviewer, Submission(ANSWERS))
        found = review_work.next_task(engine, reviewer, config=config)
        while found is not None:
            if via == "next":
                _, found = review_work.submit_and_next(
                    engine, found.claim.task_id, reviewer, Submission(ANSWERS), config=config)
            else:
                review_work.submit(engine, found.claim.task_id, reviewer, Submission(ANSWERS))
                found = review_work.next_task(engine, reviewer, config=config)

    def work(reviewer: str) -> None:
        engine = make_engine(db_url, poolclass=sa.pool.NullPool)
        try:
            start.wait()
            drain(engine, reviewer)
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=work, args=(r,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    check = make_engine(db_url)
    with transaction(check) as s:
        reviews = s.execute(sa.select(ReviewRow.task_id, ReviewRow.reviewer_id)).all()
        statuses = Counter(s.execute(sa.select(ReviewTaskRow.status)).scalars())
        active = s.execute(sa.select(sa.func.count()).select_from(AssignmentRow)
                           .where(AssignmentRow.status == "active")).scalar()
        audit.seal(s)
        chain = audit.verify(s)
        claims = len(audit.entries(s, action="task.claim", limit=10_000))
    check.dispose()
    per_task = Counter(task for task, _ in reviews)
    assert len(per_task) == TASKS and set(per_task.values()) == {K}  # none lost, none over
    assert len(set(reviews)) == len(reviews)  # no reviewer saw a task twice
    assert statuses == {"resolved": TASKS} and active == 0
    # Every claim and every review has its entry, and the chain holds.
    assert chain.ok and chain.pending == 0 and claims == TASKS * K
