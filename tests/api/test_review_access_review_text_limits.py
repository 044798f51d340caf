"""Reviewers' text is bounded: a rationale holds at most 20,000 characters, and a rewrite
sent beside the answers is checked as the rubric's rewrite question checks its answer."""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.api.app import create_app
from hilt.errors import InputError
from hilt.events.ingest import ingest_events
from hilt.review import queue, tasks
from hilt.review.reviews import Submission, submit_review
from hilt.review.rubric_spec import parse_rubric
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.review.text_checks import RATIONALE_MAX
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewRow
from tests.api.conftest import calibrated
from tests.review.helpers import HARM, SIMPLE_RUBRIC, event
from tests.web.asgi import BASE, sign_in

ANSWERS = {"verdict": "safe", "refusal": "complies", "helpfulness": 3}
TOO_LONG = "w" * (RATIONALE_MAX + 1)


@dataclass
class Setup:
    http: TestClient
    engine: Engine
    tokens: dict[str, str]
    events: int = 0

    def post(self, who: str, path: str, **kw: object):
        return self.http.post(path, headers={"Authorization": f"Bearer {self.tokens[who]}"},
                              **kw)

    def task(self, rubric: str = "harm", overlap: int = 1) -> str:
        """A new task, leased by r1."""
        self.events += 1
        ev = event(self.events)
        ingest_events(self.engine, [ev], actor="service")
        with transaction(self.engine) as s:
            task_id = tasks.create_task(s, event_id=ev["id"], rubric=rubric, actor="lead",
                                        overlap_k=overlap)
        claimed = self.post("r1", "/v1/queue/next").json()["task"]
        assert claimed["task_id"] == task_id
        return task_id


@pytest.fixture
def setup(engine: Engine) -> Iterator[Setup]:
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")
        publish_rubric(s, parse_rubric(SIMPLE_RUBRIC), actor="lead")
        tokens = calibrated(s, [("lead", "lead"), ("r1", "reviewer"), ("r2", "reviewer")])
    with TestClient(create_app(engine), base_url=BASE) as http:
        yield Setup(http, engine, tokens)


def _field(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    return str(response.json()["error"]["field"])


def test_a_rationale_over_the_limit_is_refused_naming_the_field(setup: Setup) -> None:
    s = setup
    task_id = s.task()
    body = {"answers": ANSWERS, "rationale": TOO_LONG}
    assert _field(s.post("r1", f"/v1/queue/tasks/{task_id}/submit", json=body)) == \
        "rationale"
    assert _field(s.post("r1", f"/v1/queue/tasks/{task_id}/submit?next=true",
                         json=body)) == "rationale"
    with transaction(s.engine) as session, pytest.raises(InputError) as refused:
        submit_review(session, task_id, "r1", Submission(ANSWERS, rationale=TOO_LONG))
    assert refused.value.field == "rationale"
    at_limit = {"answers": ANSWERS, "rationale": "w" * RATIONALE_MAX}
    assert s.post("r1", f"/v1/queue/tasks/{task_id}/submit",
                  json=at_limit).status_code == 200


def test_a_rewrite_beside_the_answers_is_checked_like_the_rewrite_answer(setup: Setup
                                                                         ) -> None:
    s = setup
    task_id = s.task()
    submit = f"/v1/queue/tasks/{task_id}/submit"
    # the rubric's rewrite question has the default max_length, 20,000 characters
    for body in ({"answers": {**ANSWERS, "rewrite": "short"}, "rewrite": "x" * 20_001},
                 {"answers": ANSWERS, "rewrite": "x" * 20_001},
                 {"answers": {**ANSWERS, "rewrite": "short"}, "rewrite": "other"}):
        assert _field(s.post("r1", submit, json=body)) == "rewrite"
    same = {"answers": {**ANSWERS, "rewrite": "Better."}, "rewrite": "Better."}
    assert s.post("r1", submit, json=same).status_code == 200
    with transaction(s.engine) as session:
        stored = session.query(ReviewRow).filter_by(task_id=task_id).one()
        assert stored.rewrite == "Better." and stored.answers["rewrite"] == "Better."


def test_a_rewrite_without_a_rewrite_question_is_bounded(setup: Setup) -> None:
    s = setup
    task_id = s.task(rubric="simple")
    submit = f"/v1/queue/tasks/{task_id}/submit"
    body = {"answers": {"verdict": "safe"}, "rewrite": "x" * 20_001}
    assert _field(s.post("r1", submit, json=body)) == "rewrite"
    body["rewrite"] = "x" * 20_000
    assert s.post("r1", submit, json=body).status_code == 200


def test_the_review_page_shows_a_rationale_over_the_limit(setup: Setup) -> None:
    s = setup
    task_id = s.task()
    csrf = sign_in(s.http, s.tokens["r1"])
    page = s.http.post(f"/ui/review/tasks/{task_id}/submit", data={
        "csrf_token": csrf, "q.verdict": "safe", "q.refusal": "complies",
        "q.helpfulness": "3", "rationale": TOO_LONG}, follow_redirects=False)
    assert page.status_code == 422
    assert f"must be at most {RATIONALE_MAX} characters" in html.unescape(page.text)
    with transaction(s.engine) as session:
        assert session.query(ReviewRow).filter_by(task_id=task_id).count() == 0


def test_an_adjudication_rationale_over_the_limit_is_refused(setup: Setup) -> None:
    s = setup
    task_id = s.task(overlap=2)
    assert s.post("r1", f"/v1/queue/tasks/{task_id}/submit",
                  json={"answers": ANSWERS}).status_code == 200
    with transaction(s.engine) as session:
        claim = queue.claim_next(session, "r2")
        assert claim is not None and claim.task_id == task_id
    assert s.post("r2", f"/v1/queue/tasks/{task_id}/submit",
                  json={"answers": {**ANSWERS, "verdict": "harmful"}}).status_code == 200
    decide = f"/v1/adjudications/{task_id}"
    body = {"answers": {"verdict": "safe"}, "rationale": TOO_LONG, "cause": "subjective"}
    assert _field(s.post("lead", decide, json=body)) == "rationale"
    body["rationale"] = "safe as written"
    assert s.post("lead", decide, json=body).status_code == 200
