"""The time spent a review records is at most the time since its task was claimed: a
hand-typed or faulty figure (1e300 s) is not stored as a measurement."""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.review import queue
from hilt.review.reviews import Submission, submit_review
from hilt.review.tasks import create_task
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.review import ReviewRow
from tests.review.helpers import add_reviewers, event, ingest, publish_examples

ANSWERS = {"verdict": "safe", "refusal": "complies", "helpfulness": 4}


def _tasks(engine: Engine, pool: str, n: int) -> None:
    publish_examples(engine)
    ingest(engine, [event(i) for i in range(n)])
    with transaction(engine) as s:
        for i in range(n):
            create_task(s, event_id=f"ev{i:05d}", rubric="harm", actor="lead", pool=pool,
                        overlap_k=1)


def _stored(engine: Engine, task_id: str) -> float | None:
    with transaction(engine) as s:
        return s.execute(sa.select(ReviewRow.time_spent_s)
                         .where(ReviewRow.task_id == task_id)).scalar_one()


def test_a_figure_beyond_the_time_since_the_claim_is_cut_to_it(engine: Engine) -> None:
    cases = ((1e300, 40.0), (40.5, 40.0), (12.5, 12.5), (0.0, 0.0), (None, None))
    _tasks(engine, "tp", len(cases))
    add_reviewers(engine, ["r1"], pools=["tp"])
    claimed = utcnow()
    for given, kept in cases:
        with transaction(engine) as s:
            claim = queue.claim_next(s, "r1", now=claimed)
            assert claim is not None
        with transaction(engine) as s:
            submit_review(s, claim.task_id, "r1",
                          Submission(answers=ANSWERS, time_spent_s=given),
                          now=claimed + timedelta(seconds=40))
        assert _stored(engine, claim.task_id) == kept, given


def test_the_api_submit_body_is_cut_too(engine: Engine) -> None:
    _tasks(engine, "api", 2)
    add_reviewers(engine, ["r2"], pools=["api"])
    with transaction(engine) as s:
        token = create_token(s, role="reviewer", reviewer_id="r2")[1]
    headers = {"Authorization": f"Bearer {token}"}
    stored: dict[float | None, float | None] = {}
    with TestClient(create_app(engine)) as client:
        for given in (1e300, None):
            start = time.monotonic()
            task = client.post("/v1/queue/next", headers=headers).json()["task"]
            body = {"answers": ANSWERS, **({} if given is None else {"time_spent_s": given})}
            done = client.post(f"/v1/queue/tasks/{task['task_id']}/submit",
                               headers=headers, json=body)
            elapsed = time.monotonic() - start
            assert done.status_code == 200, done.text
            stored[given] = _stored(engine, task["task_id"])
            if given is not None:
                assert stored[given] is not None and 0 <= stored[given] <= elapsed + 1
    assert stored[None] is None  # no figure given: none is made up
