"""What "Next task" says when it finds nothing: an onboarding reviewer is told why open
tasks do not reach them, rather than that the queue is empty."""

from __future__ import annotations

import html

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow
from tests.web.asgi import sign_in
from tests.web.conftest import add_person
from tests.web.seed import add_task, event, publish_harm


def _status(engine: Engine, reviewer_id: str, status: str) -> None:
    with transaction(engine) as s:
        s.get_one(ReviewerRow, reviewer_id).status = status


def test_an_onboarding_reviewer_is_told_only_calibration_items_reach_them(
        client: TestClient, engine: Engine) -> None:
    publish_harm(engine)
    add_task(engine, event("ev-open", prompt="p", response="r"), pool="default", overlap=1)
    csrf = sign_in(client, add_person(engine, "new-1", "reviewer"))
    _status(engine, "new-1", "onboarding")
    page = client.post("/ui/review/next", data={"csrf_token": csrf})
    text = html.unescape(page.text)
    assert page.status_code == 200
    assert "While you are onboarding you receive only calibration (gold) items" in text
    assert "Your queue is empty for now." not in text


def test_a_calibrated_reviewer_with_nothing_open_sees_an_empty_queue(
        client: TestClient, engine: Engine) -> None:
    csrf = sign_in(client, add_person(engine, "old-1", "reviewer"))
    page = client.post("/ui/review/next", data={"csrf_token": csrf})
    assert "Your queue is empty for now." in page.text
