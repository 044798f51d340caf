"""Every API body is read as strict JSON: a key given twice, nesting past the depth limit,
a body that is not UTF-8 or not JSON are refused with hilt's 422 naming the field; a body
that is not plain JSON (compressed, another Content-Type) with 415. Each after the token
and role checks, as FastAPI answers a body that fails validation."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import MAX_API_BODY_BYTES, create_app
from hilt.jsonl import MAX_DEPTH
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewRow, ReviewTaskRow
from tests.api.conftest import calibrated
from tests.review.helpers import HARM, event


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    # Bodies are read and refused before any query: SQLite only.
    return sqlite_engine


JSON = {"Content-Type": "application/json"}
TOO_DEEP = f"nested too deeply (limit {MAX_DEPTH} levels"


@dataclass
class Caller:
    client: TestClient
    tokens: dict[str, str]

    def post(self, who: str | None, path: str, content: bytes | str,
             headers: dict[str, str] | None = None) -> object:
        auth = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.client.post(path, content=content,
                                headers={**JSON, **auth, **(headers or {})})


@pytest.fixture
def caller(engine: Engine) -> Iterator[Caller]:
    with transaction(engine) as s:
        tokens = calibrated(s, [("lead", "lead"), ("r1", "reviewer")], pools=["default"])
        tokens["service"] = create_token(s, role="service")[1]
        tokens["admin"] = create_token(s, role="admin")[1]
    with TestClient(create_app(engine)) as client:
        yield Caller(client, tokens)


def _refused(resp: object, status: int, field: str | None = None) -> dict:
    assert resp.status_code == status, resp.text  # type: ignore[attr-defined]
    body = resp.json()  # type: ignore[attr-defined]
    assert isinstance(body["detail"], str)
    if status == 422:
        assert body["error"]["file"] == "request"
        assert body["error"]["field"] == field, body
    return body


def _with_task(c: Caller) -> str:
    """A harm task on one event, leased by r1; its id."""
    assert c.post("lead", "/v1/rubrics", json.dumps(yaml.safe_load(HARM.read_text()))
                  ).status_code == 200
    assert c.post("service", "/v1/events", json.dumps({"events": [event(1)]})
                  ).json()["new"] == 1
    created = c.post("lead", "/v1/tasks", json.dumps({"event_id": "ev00001",
                                                      "rubric": "harm", "overlap": 1}))
    assert created.status_code == 200, created.text  # type: ignore[attr-defined]
    task = c.post("r1", "/v1/queue/next", b"").json()["task"]  # type: ignore[attr-defined]
    return str(task["task_id"])


def test_a_key_repeated_in_the_answers_is_refused_and_nothing_is_stored(
        caller: Caller, engine: Engine) -> None:
    task = _with_task(caller)
    submit = f"/v1/queue/tasks/{task}/submit"
    twice = ('{"answers": {"verdict": "harmful", "refusal": "complies", '
             '"helpfulness": 3, "verdict": "safe"}}')
    body = _refused(caller.post("r1", submit, twice), 422, "answers.verdict")
    assert body["error"]["reason"] == "key 'verdict' appears more than once in the object"
    with transaction(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(ReviewRow)).scalar() == 0
    once = twice.replace(', "verdict": "safe"', "")
    assert caller.post("r1", submit, once).status_code == 200  # type: ignore[attr-defined]
    with transaction(engine) as s:
        (answers,) = s.execute(sa.select(ReviewRow.answers)).scalars().all()
    assert answers["verdict"] == "harmful"


def test_a_repeated_event_id_creates_no_task(caller: Caller, engine: Engine) -> None:
    assert caller.post("lead", "/v1/rubrics", json.dumps(yaml.safe_load(HARM.read_text()))
                       ).status_code == 200
    assert caller.post("service", "/v1/events", json.dumps(
        {"events": [event(1), event(2)]})).json()["new"] == 2  # type: ignore[attr-defined]
    body = '{"event_id": "ev00001", "rubric": "harm", "event_id": "ev00002"}'
    _refused(caller.post("lead", "/v1/tasks", body), 422, "event_id")
    with transaction(engine) as s:
        assert s.execute(sa.select(ReviewTaskRow.id)).scalars().all() == []


# One body route of each router: the check is the app's, not each route's.
ROUTES = [
    ("lead", "/v1/rubrics", '{"id": "a", "id": "b"}', "id"),
    ("lead", "/v1/escalation/rule-sets", '{"spec": {"x": 1, "x": 2}}', "spec.x"),
    ("lead", "/v1/tasks/gold", '{"answers": [{"a": 1}, {"b": 1, "b": 2}]}', "answers[1].b"),
    ("admin", "/v1/jobs", '{"kind": "x", "params": {"p": 1, "p": 2}}', "params.p"),
    ("admin", "/v1/webhooks", '{"url": "a", "url": "b"}', "url"),
    ("lead", "/v1/datasets/forget-subject", '{"subject_id": "a", "subject_id": "b"}',
     "subject_id"),
    ("lead", "/v1/drift/bridges", '{"a": {"b": {"c": 1, "c": 1}}}', "a.b.c"),
    ("lead", "/v1/quality/reviewers/r1/status", '{"status": "x", "status": "y"}',
     "status"),
    ("lead", "/v1/reviewers/r1/deactivate", '{"reason": "a", "reason": "b"}', "reason"),
]


@pytest.mark.parametrize(("who", "path", "body", "field"), ROUTES)
def test_every_body_route_refuses_a_repeated_key_naming_its_path(
        caller: Caller, who: str, path: str, body: str, field: str) -> None:
    _refused(caller.post(who, path, body), 422, field)


def test_body_problems_come_after_the_token_and_the_role(caller: Caller) -> None:
    twice = '{"event_id": "a", "event_id": "b"}'
    assert caller.post(None, "/v1/tasks", twice).status_code == 401  # type: ignore
    assert caller.post("r1", "/v1/tasks", twice).status_code == 403  # type: ignore
    xml = {"Content-Type": "application/xml"}
    assert caller.post(None, "/v1/tasks", b"<a/>", xml).status_code == 401  # type: ignore
    assert caller.post("r1", "/v1/tasks", b"<a/>", xml).status_code == 403  # type: ignore


def test_deep_nesting_is_a_422_naming_the_field(caller: Caller) -> None:
    deep = '{"answers": {"x": ' + "[" * 5000 + "]" * 5000 + "}}"
    body = _refused(caller.post("r1", "/v1/queue/tasks/t/submit", deep), 422,
                    "answers.x[0][0][0][0][0][0][0][0][0][0]…")
    assert TOO_DEEP in body["detail"]
    # at the limit, the body is read and goes on to validation (an unknown task here)
    at_limit = '{"answers": {"x": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}}"
    assert caller.post("r1", "/v1/queue/tasks/t/submit", at_limit
                       ).status_code == 404  # type: ignore[attr-defined]


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_a_deep_event_batch_is_a_422_naming_event_and_field(caller: Caller,
                                                            depth: int) -> None:
    whole = '{"events":' + "[" * depth + "]" * depth + "}"
    body = _refused(caller.post("service", "/v1/events", whole), 422,
                    "[0][0][0][0][0][0][0][0][0][0][0][0]…")
    assert body["error"]["line"] == 0 and TOO_DEEP in body["detail"]
    scores = ('{"events": [' + json.dumps(event(1)) + ', {"interaction": {"prompt": "p"}, '
              '"scores": {"a": ' + "[" * depth + "]" * depth + "}}]}")
    body = _refused(caller.post("service", "/v1/events", scores), 422,
                    "scores.a[0][0][0][0][0][0][0][0][0][0]…")
    assert body["error"]["line"] == 1


def test_a_pretty_printed_batch_is_still_stored(caller: Caller) -> None:
    # white space before a colon sends the batch through the slower look for repeated
    # keys, which must read (not recurse into) a free-form value nested to the limit
    deep = json.loads("[" * (MAX_DEPTH - 4) + "]" * (MAX_DEPTH - 4))
    ev = {**event(1), "context": {"consent": ["review"], "metadata": {"deep": deep}}}
    text = json.dumps({"events": [ev]}, indent=1, separators=(",", " : "))
    assert caller.post("service", "/v1/events", text).json()["new"] == 1  # type: ignore


@pytest.mark.parametrize(("content_type", "sent"), [
    ("text/plain", '{"event_id": "a"}'),
    ("application/xml", "<task><event_id>a</event_id></task>"),
    ("application/x-www-form-urlencoded", "event_id=a&rubric=harm"),
    ("multipart/form-data; boundary=x", "--x--"),
    (None, '{"event_id": "a"}'),
])
@pytest.mark.parametrize("path", ["/v1/tasks", "/v1/events"])
def test_a_body_that_is_not_json_is_a_415(caller: Caller, path: str,
                                          content_type: str | None, sent: str) -> None:
    headers = {"Authorization": f"Bearer {caller.tokens['lead']}"}
    if content_type:
        headers["Content-Type"] = content_type
    resp = caller.client.post(path, content=sent, headers=headers)
    body = _refused(resp, 415)
    assert "Content-Type: application/json" in body["detail"]
    assert sent not in resp.text  # the body is not echoed back


def test_json_types_with_parameters_are_json(caller: Caller) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        resp = caller.post("lead", "/v1/tasks", '{"event_id": "nope", "rubric": "harm"}',
                           {"Content-Type": content_type})
        assert resp.status_code == 404, resp.text  # type: ignore[attr-defined]


def test_a_compressed_body_is_a_415(caller: Caller) -> None:
    packed = gzip.compress(b'{"event_id": "a", "rubric": "harm"}')
    body = _refused(caller.post("lead", "/v1/tasks", packed, {"Content-Encoding": "gzip"}),
                    415)
    assert body["detail"].startswith("Content-Encoding gzip is not supported")


@pytest.mark.parametrize(("sent", "reason"), [
    (b'{"event_id": "\xff"}', "not UTF-8 text (byte 15 of the body)"),
    (b'{"event_id": ', "invalid JSON: Expecting value at line 1 column 14"),
    (b'{"event_id": "a",}', "invalid JSON: Expecting property name enclosed in double "
                           "quotes at line 1 column 18"),
])
def test_an_undecodable_body_is_hilts_422(caller: Caller, sent: bytes, reason: str) -> None:
    body = _refused(caller.post("lead", "/v1/tasks", sent), 422)
    assert body["error"]["reason"] == reason


def test_a_route_without_a_body_ignores_one(caller: Caller) -> None:
    resp = caller.post("r1", "/v1/queue/tasks/t/heartbeat", b"junk",
                       {"Content-Type": "text/plain"})
    assert resp.status_code == 404, resp.text  # type: ignore[attr-defined]


def test_an_oversized_body_is_refused_before_the_token(caller: Caller) -> None:
    # by its Content-Length, unread, without a token lookup (docs/events.md, Access)
    resp = caller.post(None, "/v1/tasks", b"x" * (MAX_API_BODY_BYTES + 1))
    assert resp.status_code == 413  # type: ignore[attr-defined]
