"""GET /v1/reviews/mine lists a reviewer's reviews newest first, and reviews submitted
at the same instant in a fixed order (by id): a page never depends on how the database
happened to read the rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.review import tasks
from hilt.review.queue import QueueConfig, claim_next
from hilt.review.reviews import Submission, submit_review
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import transaction
from tests.review.helpers import HARM, add_reviewers, event, ingest

T0 = datetime(2030, 1, 1, tzinfo=UTC)
ANSWERS = {"verdict": "safe", "refusal": "complies", "helpfulness": 3}
# The first character of each review's id, in the order they are submitted: neither
# that order nor its reverse is the order of the ids.
RANKS = "3140526"


@pytest.fixture
def http(engine: Engine) -> Iterator[tuple[TestClient, dict[str, str]]]:
    add_reviewers(engine, ["r1"])
    with transaction(engine) as s:
        token = create_token(s, role="reviewer", reviewer_id="r1")[1]
    with TestClient(create_app(engine)) as client:
        yield client, {"Authorization": f"Bearer {token}"}


def _reviews_at_one_instant(engine: Engine) -> list[str]:
    """One review by r1 per task, all submitted at ``T0``; their ids in submission
    order."""
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")
    ingest(engine, [event(i) for i in range(len(RANKS))])
    submitted = []
    for i, rank in enumerate(RANKS):
        with transaction(engine) as s:
            tid = tasks.create_task(s, event_id=event(i)["id"], rubric="harm",
                                    actor="lead", overlap_k=1, now=T0)
            claim = claim_next(s, "r1", now=T0, config=QueueConfig(gold_rate=0))
            assert claim is not None and claim.task_id == tid
            with tasks.id_source(lambda rank=rank: rank + uuid.uuid4().hex):
                result = submit_review(s, tid, "r1", Submission(ANSWERS), now=T0)
            submitted.append(result.review_id)
    return submitted


def test_reviews_submitted_at_one_instant_come_in_id_order(
        http: tuple[TestClient, dict[str, str]], engine: Engine) -> None:
    client, headers = http
    submitted = _reviews_at_one_instant(engine)
    assert [r[4] for r in submitted] == list(RANKS)  # "rev_" + the rank
    every = client.get("/v1/reviews/mine", headers=headers)
    assert every.status_code == 200, every.text
    assert [r["review_id"] for r in every.json()] == sorted(submitted)
    # a shorter page is the start of the same order
    first = client.get("/v1/reviews/mine?limit=3", headers=headers).json()
    assert [r["review_id"] for r in first] == sorted(submitted)[:3]
