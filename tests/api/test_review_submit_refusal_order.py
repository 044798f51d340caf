"""A submission is refused for who sends it before what its answers say, on SQLite and
on PostgreSQL's one-statement path alike: a reviewer who never held the task gets 404
and a suspended one 403, whatever answers they send, not a 422 about the answers (which
the one-statement path used to check first)."""

from __future__ import annotations

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.api.app import create_app
from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow
from tests.api.conftest import calibrated
from tests.review.helpers import HARM, event, ingest

BAD = {"answers": {"verdict": "nope"}}


@pytest.mark.parametrize("path", ["/submit", "/submit?next=true"])
def test_who_submits_is_checked_before_the_answers(engine: Engine, path: str) -> None:
    with transaction(engine) as s:
        tokens = calibrated(s, [("lead", "lead"), ("r1", "reviewer"), ("r2", "reviewer")])
    with TestClient(create_app(engine)) as http:
        def call(who: str, method: str, url: str, **kw: object):
            return http.request(method, url, headers={
                "Authorization": f"Bearer {tokens[who]}"}, **kw)

        assert call("lead", "POST", "/v1/rubrics",
                    json=yaml.safe_load(HARM.read_text())).status_code == 200
        ingest(engine, [event(1)])
        task = call("lead", "POST", "/v1/tasks", json={
            "event_id": "ev00001", "rubric": "harm", "overlap": 2}).json()["task_id"]
        url = f"/v1/queue/tasks/{task}{path}"

        never = call("r2", "POST", url, json=BAD)
        assert never.status_code == 404 and "never assigned" in never.json()["detail"]

        assert call("r1", "POST", "/v1/queue/next").json()["task"]["task_id"] == task
        held = call("r1", "POST", url, json=BAD)
        assert held.status_code == 422 and held.json()["error"]["field"] == "verdict"
        with transaction(engine) as s:
            s.get_one(ReviewerRow, "r1").status = "suspended"
        suspended = call("r1", "POST", url, json=BAD)
        assert suspended.status_code == 403, suspended.text
        assert "suspended" in suspended.json()["detail"]
