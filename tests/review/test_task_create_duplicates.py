"""Creating a task or a gold item by hand twice (a client retrying a create that timed
out) makes one task: a second create of a task of the same kind on the same event and
rubric version is refused (409 over HTTP, exit 2 on the command line), naming the task
that exists, while that task still takes reviews. Tasks that no longer do block
nothing; escalation and drift bridges keep their own rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.errors import Conflict
from hilt.quality.drift.bridge import create_bridge
from hilt.review import tasks
from hilt.review.queue import claim_next
from hilt.review.reviews import Submission, submit_review
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import make_engine, migrate, transaction
from hilt.store.tables.review import ReviewTaskRow

from .helpers import HARM, add_reviewers, event, ingest
from .test_cli import run

GOLD = {"verdict": "safe", "refusal": "complies", "helpfulness": 5}
ANSWERS = {"verdict": "safe", "refusal": "complies", "helpfulness": 4}


@pytest.fixture
def store(engine: Engine) -> Engine:
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")
    ingest(engine, [event(i) for i in range(3)])
    return engine


def _create(engine: Engine, i: int = 0, rubric: str = "harm", **kw: Any) -> str:
    with transaction(engine) as s:
        return tasks.create_task(s, event_id=f"ev{i:05d}", rubric=rubric, actor="lead",
                                 **kw)


def _gold(engine: Engine, i: int = 0, rubric: str = "harm") -> str:
    with transaction(engine) as s:
        return tasks.create_gold_task(s, event_id=f"ev{i:05d}", rubric=rubric,
                                      answers=GOLD, actor="lead")


def _tasks_of(engine: Engine, i: int = 0) -> list[tuple[str, str, bool]]:
    with transaction(engine) as s:
        t = ReviewTaskRow
        return [(r.id, r.status, r.is_gold) for r in s.execute(
            sa.select(t.id, t.status, t.is_gold).where(t.event_id == f"ev{i:05d}")
            .order_by(t.created_at, t.id)).all()]


def _harm_v2(engine: Engine, tmp_path: Path) -> None:
    spec = yaml.safe_load(HARM.read_text())
    spec["changelog"] = "second version"
    spec["guidelines"] += "Quote the policy clause you rely on.\n"
    path = tmp_path / "harm2.yaml"
    path.write_text(yaml.safe_dump(spec))
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(path), actor="lead")


def test_a_second_create_of_an_open_task_is_refused_naming_the_first(store: Engine
                                                                     ) -> None:
    first = _create(store, overlap_k=1)
    with pytest.raises(Conflict) as refused:
        _create(store, overlap_k=1)
    message = str(refused.value)
    assert first in message and "ev00000" in message and "harm@1" in message
    # another pool, severity or overlap is still the same item under the same rubric
    with pytest.raises(Conflict):
        _create(store, rubric="harm@1", pool="safety", severity="sev0", overlap_k=3)
    assert _tasks_of(store) == [(first, "open", False)]
    # other events are not affected
    assert _create(store, 1) != first


def test_a_second_gold_item_is_refused_but_a_task_beside_it_is_not(store: Engine) -> None:
    gold = _gold(store)
    with pytest.raises(Conflict) as refused:
        _gold(store)
    assert gold in str(refused.value) and "gold item" in str(refused.value)
    # a gold item and a task by hand are of different kinds: neither blocks the other
    task = _create(store)
    assert _tasks_of(store) == [(gold, "gold", True), (task, "open", False)]


def test_another_rubric_version_is_a_new_task(store: Engine, tmp_path: Path) -> None:
    _harm_v2(store, tmp_path)
    first = _create(store, rubric="harm@1")
    second = _create(store, rubric="harm@2")
    gold_1, gold_2 = _gold(store, rubric="harm@1"), _gold(store, rubric="harm@2")
    assert len({first, second, gold_1, gold_2}) == 4


def test_a_task_no_longer_taking_reviews_blocks_nothing(store: Engine) -> None:
    """Resolved, cancelled, waiting for adjudication or clustered: a new task is a
    deliberate re-review."""
    add_reviewers(store, ["r1"])
    first = _create(store, overlap_k=1)
    with transaction(store) as s:
        claim = claim_next(s, "r1")
        assert claim is not None and claim.task_id == first
    with transaction(store) as s:
        submit_review(s, first, "r1", Submission(answers=ANSWERS))
    assert _tasks_of(store)[0][1] == "resolved"
    made = [first]
    for status in ("cancelled", "needs_adjudication", "clustered"):
        made.append(_create(store, overlap_k=1))
        with transaction(store) as s:
            s.get_one(ReviewTaskRow, made[-1]).status = status
    made.append(_create(store, overlap_k=1))
    assert [t[0] for t in _tasks_of(store)] == made
    # a cancelled gold item (its event erased) does not block a new one either
    gold = _gold(store)
    with transaction(store) as s:
        s.get_one(ReviewTaskRow, gold).status = "cancelled"
    assert _gold(store) != gold


def test_a_drift_bridge_still_re_reviews_an_item_with_an_open_task(store: Engine,
                                                                  tmp_path: Path) -> None:
    """Bridges keep their own rules: an open task made by hand under the new version
    does not stop the bridge's task, and the bridge's task blocks a later create."""
    add_reviewers(store, ["r1"])
    first = _create(store, overlap_k=1)
    with transaction(store) as s:
        assert claim_next(s, "r1") is not None
    with transaction(store) as s:
        submit_review(s, first, "r1", Submission(answers=ANSWERS))
    _harm_v2(store, tmp_path)
    by_hand = _create(store, rubric="harm@2")
    with transaction(store) as s:
        create_bridge(s, "harm", 1, 2, actor="lead", overlap_k=1)
    on_v2 = [t for t in _tasks_of(store) if t[0] not in (first, by_hand)]
    assert len(on_v2) == 1 and on_v2[0][1] == "open"
    with pytest.raises(Conflict):
        _create(store, rubric="harm@2")


@pytest.fixture
def http(store: Engine) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with transaction(store) as s:
        token = create_token(s, role="lead")[1]
    with TestClient(create_app(store)) as client:
        yield client, {"Authorization": f"Bearer {token}"}


def test_posting_the_same_task_twice_answers_409_naming_the_task(
        http: tuple[TestClient, dict[str, str]]) -> None:
    client, lead = http
    body = {"event_id": "ev00001", "rubric": "harm", "overlap": 2}
    made = client.post("/v1/tasks", json=body, headers=lead)
    assert made.status_code == 200, made.text
    again = client.post("/v1/tasks", json=body, headers=lead)
    assert again.status_code == 409, again.text
    assert made.json()["task_id"] in again.json()["detail"]

    gold = {"event_id": "ev00001", "rubric": "harm", "answers": GOLD}
    made = client.post("/v1/tasks/gold", json=gold, headers=lead)
    assert made.status_code == 200, made.text
    again = client.post("/v1/tasks/gold", json=gold, headers=lead)
    assert again.status_code == 409, again.text
    assert made.json()["task_id"] in again.json()["detail"]


def test_cli_task_create_twice_exits_2_naming_the_task(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(db)
    migrate(engine)
    assert run(db, "rubric", "publish", str(HARM))[0] == 0
    ingest(engine, [event(7)])
    code, made = run(db, "task", "create", "--event", "ev00007", "--rubric", "harm")
    assert code == 0, made
    assert isinstance(made, dict)
    code, again = run(db, "task", "create", "--event", "ev00007", "--rubric", "harm")
    assert code == 2 and made["task_id"] in str(again)
    gold_args = ("task", "gold", "--event", "ev00007", "--rubric", "harm", "--answers",
                 '{"verdict": "safe", "refusal": "complies", "helpfulness": 5}')
    code, gold = run(db, *gold_args)
    assert code == 0, gold
    assert isinstance(gold, dict)
    code, again = run(db, *gold_args)
    assert code == 2 and gold["task_id"] in str(again)
