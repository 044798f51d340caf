"""Blind review across an item's tasks: whoever is reviewing an item under one task (a
re-review under a new rubric version, say) reads none of its other tasks' reviews,
decisions or labels until they have submitted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token
from hilt.api.app import create_app
from hilt.events.ingest import ingest_events
from hilt.review import queue, tasks
from hilt.review.reviews import Submission, submit_review
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow
from tests.review.helpers import HARM, event
from tests.web.asgi import BASE, sign_in

SECRET = "first-round-rationale-4471"
ANSWERS = {"refusal": "complies", "helpfulness": 3}


@dataclass
class Setup:
    http: TestClient
    engine: Engine
    tokens: dict[str, str]
    first: str  # the first task of the item, waiting for adjudication
    event_id: str

    def get(self, who: str, path: str, **kw: object):
        return self.http.get(path, headers={"Authorization": f"Bearer {self.tokens[who]}"},
                             **kw)

    def post(self, who: str, path: str, **kw: object):
        return self.http.post(path, headers={"Authorization": f"Bearer {self.tokens[who]}"},
                              **kw)


def _review(engine: Engine, reviewer: str, verdict: str) -> str:
    with transaction(engine) as s:
        claim = queue.claim_next(s, reviewer)
        assert claim is not None
    with transaction(engine) as s:
        submit_review(s, claim.task_id, reviewer, Submission(
            answers={"verdict": verdict, **ANSWERS}, rationale=SECRET))
    return claim.task_id


@pytest.fixture
def setup(engine: Engine) -> Iterator[Setup]:
    tokens = {}
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")
        for rid, role in (("lead", "lead"), ("kim", "adjudicator"), ("r1", "reviewer"),
                          ("r2", "reviewer")):
            add_reviewer(s, reviewer_id=rid, role=role)
            s.flush()
            s.get_one(ReviewerRow, rid).status = "calibrated"
            tokens[rid] = create_token(s, role=role, reviewer_id=rid)[1]
    ev = event(1)
    ingest_events(engine, [ev], actor="service")
    with transaction(engine) as s:
        first = tasks.create_task(s, event_id=ev["id"], rubric="harm", actor="lead",
                                  overlap_k=2)
    assert _review(engine, "r1", "safe") == first
    assert _review(engine, "r2", "harmful") == first  # a disagreement: adjudication
    with TestClient(create_app(engine), base_url=BASE) as http:
        yield Setup(http, engine, tokens, first, ev["id"])


def _rereview(s: Setup) -> str:
    """A second task of the same item, leased by the adjudicator kim."""
    with transaction(s.engine) as session:
        second = tasks.create_task(session, event_id=s.event_id, rubric="harm",
                                   actor="lead", overlap_k=1)
    claimed = s.post("kim", "/v1/queue/next").json()["task"]
    assert claimed["task_id"] == second
    return second


def _label_events(s: Setup, who: str) -> set[str]:
    page = s.get(who, "/v1/labels", params={"limit": 100})
    assert page.status_code == 200
    return {label["event_id"] for label in page.json()["labels"]}


def test_the_case_file_is_closed_to_whoever_is_reviewing_the_same_item(setup: Setup
                                                                       ) -> None:
    s = setup
    assert SECRET in s.get("kim", f"/v1/adjudications/{s.first}").text  # not reviewing
    second = _rereview(s)
    refused = s.get("kim", f"/v1/adjudications/{s.first}")
    assert refused.status_code == 403 and SECRET not in refused.text
    decision = {"answers": {"verdict": "safe"}, "rationale": "r", "cause": "subjective"}
    refused = s.post("kim", f"/v1/adjudications/{s.first}", json=decision)
    assert refused.status_code == 403 and "is reviewing this item" in refused.text
    assert s.first not in {c["task_id"] for c in s.get("kim", "/v1/adjudications").json()}
    # the page that shows the case refuses too
    csrf = sign_in(s.http, s.tokens["kim"])
    page = s.http.get(f"/ui/adjudicate/{s.first}")
    assert page.status_code == 403 and SECRET not in page.text
    assert s.first not in s.http.get("/ui/adjudicate").text
    # a lead who is not reviewing the item still reads it
    assert SECRET in s.get("lead", f"/v1/adjudications/{s.first}").text
    # a released lease may still be submitted late while the task has a free slot
    assert s.http.post(f"/ui/review/tasks/{second}/skip", data={"csrf_token": csrf},
                       follow_redirects=False).status_code == 303
    s.http.cookies.clear()
    assert s.get("kim", f"/v1/adjudications/{s.first}").status_code == 403
    # once the re-review's reviews are in, the item is the adjudicator's to read again
    submitted = s.post("kim", f"/v1/queue/tasks/{second}/submit",
                       json={"answers": {"verdict": "safe", **ANSWERS}})
    assert submitted.status_code == 200, submitted.text
    assert SECRET in s.get("kim", f"/v1/adjudications/{s.first}").text


def test_final_labels_and_proposals_leave_out_the_item_being_reviewed(setup: Setup
                                                                      ) -> None:
    s = setup
    decided = s.post("lead", f"/v1/adjudications/{s.first}", json={
        "answers": {"verdict": "harmful"}, "rationale": "decided", "cause": "guideline_gap"})
    assert decided.status_code == 200, decided.text
    assert _label_events(s, "kim") == {s.event_id}
    assert "withheld" not in s.get("kim", "/v1/labels").json()
    second = _rereview(s)
    assert _label_events(s, "kim") == set()
    # what was left out is counted, so the page is not taken for all the labels there are
    page = s.get("kim", "/v1/labels").json()
    per_question = len(s.get("lead", "/v1/labels").json()["labels"])  # all of the item
    assert per_question >= 1
    assert (page["withheld"]["count"], page["withheld"]["under_review"],
            page["withheld"]["gold"]) == (per_question, per_question, 0)
    assert "blind review" in page["withheld"]["reason"]
    proposals = s.get("kim", "/v1/rubrics/harm/proposals")
    assert proposals.json() == [] and proposals.headers["X-Hilt-Withheld"] == "1"
    assert _label_events(s, "lead") == {s.event_id}
    assert "withheld" not in s.get("lead", "/v1/labels").json()
    proposals = s.get("lead", "/v1/rubrics/harm/proposals")
    assert len(proposals.json()) == 1 and proposals.headers["X-Hilt-Withheld"] == "0"
    assert s.get("lead", f"/v1/tasks/{s.first}").status_code == 200
    assert s.post("kim", f"/v1/queue/tasks/{second}/submit",
                  json={"answers": {"verdict": "safe", **ANSWERS}}).status_code == 200
    assert _label_events(s, "kim") == {s.event_id}
    assert len(s.get("kim", "/v1/rubrics/harm/proposals").json()) == 1


def test_proposals_of_an_unpublished_rubric_are_a_404(setup: Setup) -> None:
    s = setup
    assert s.get("lead", "/v1/rubrics/harm/proposals").status_code == 200
    missing = s.get("lead", "/v1/rubrics/hram/proposals")  # misspelt
    assert missing.status_code == 404 and "hram" in missing.text
