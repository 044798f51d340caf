"""The review page's time spent is stored as a measured time: a forged 1e300 s is cut
to the time since the task was claimed."""

from __future__ import annotations

import time

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.store.db import transaction
from hilt.store.tables.review import ReviewRow
from tests.web.asgi import sign_in
from tests.web.conftest import add_person
from tests.web.seed import add_task, event, publish_harm


def test_a_forged_time_spent_is_cut_to_the_time_since_the_claim(client: TestClient,
                                                               engine: Engine) -> None:
    publish_harm(engine)
    task_id = add_task(engine, event("ev-time", prompt="p", response="r"), pool="time",
                       overlap=1)
    csrf = sign_in(client, add_person(engine, "rev-t", "reviewer", pools=["time"]))
    start = time.monotonic()
    claim = client.post("/ui/review/next", data={"csrf_token": csrf},
                        follow_redirects=False)
    assert claim.headers["location"].startswith(f"/ui/review/tasks/{task_id}")
    done = client.post(f"/ui/review/tasks/{task_id}/submit", follow_redirects=False,
                       data={"csrf_token": csrf, "q.verdict": "safe",
                             "q.refusal": "complies", "q.helpfulness": "4",
                             "time_spent_s": "1e300"})
    elapsed = time.monotonic() - start
    assert done.status_code == 303, done.text[-2000:]
    with transaction(engine) as s:
        stored = s.execute(sa.select(ReviewRow.time_spent_s)
                           .where(ReviewRow.task_id == task_id)).scalar_one()
    assert stored is not None and 0 <= stored <= elapsed + 1
