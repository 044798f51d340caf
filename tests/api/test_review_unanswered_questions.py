"""A refused review, gold item or decision names every problem in its answers (every
required question left unanswered among them), not only the first: a client that fixed
the first would be refused again for the next, one request per question."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.api.app import create_app
from hilt.cli import app as cli
from hilt.errors import InputError
from hilt.review.rubric_spec import clean_answers
from hilt.review.rubrics import load_rubric_file
from hilt.store.db import make_engine, migrate, transaction
from tests.api.conftest import calibrated
from tests.review.helpers import HARM, add_reviewers, event, ingest, publish_examples

ALL_REQUIRED = {"verdict": "safe", "refusal": "complies", "helpfulness": 3}


@dataclass
class Client:
    http: TestClient
    tokens: dict[str, str]

    def call(self, who: str, method: str, path: str, **kw: Any) -> Any:
        return self.http.request(method, path, headers={
            "Authorization": f"Bearer {self.tokens[who]}"}, **kw)


@pytest.fixture
def client(engine: Engine) -> Iterator[Client]:
    with transaction(engine) as s:
        tokens = calibrated(s, [("lead", "lead"), ("adj", "adjudicator"),
                                ("r1", "reviewer"), ("r2", "reviewer")])
    with TestClient(create_app(engine)) as http:
        c = Client(http, tokens)
        assert c.call("lead", "POST", "/v1/rubrics",
                      json=yaml.safe_load(HARM.read_text())).status_code == 200
        ingest(engine, [event(1), event(2)])
        yield c


def test_clean_answers_names_every_unanswered_required_question() -> None:
    spec = load_rubric_file(HARM)
    with pytest.raises(InputError) as err:
        clean_answers(spec, {"notes": "n"}, 1)
    assert err.value.field == "verdict"
    assert err.value.reason == ("required; unanswered too: 'refusal', 'helpfulness' "
                                "(rubric harm)")
    with pytest.raises(InputError) as err:
        clean_answers(spec, {"verdict": "nope", "helpfulness": 9}, 1)
    assert err.value.field == "verdict"
    reason = err.value.reason
    assert reason.startswith("must be one of") and "required, unanswered: 'refusal'" in reason
    assert "'helpfulness': must be on the scale" in reason
    # one problem reads as before
    with pytest.raises(InputError) as err:
        clean_answers(spec, {"verdict": "safe", "refusal": "complies"}, 1)
    assert (err.value.field, err.value.reason) == ("helpfulness", "required (rubric harm)")


def test_api_submission_names_every_unanswered_required_question(client: Client) -> None:
    c = client
    task = c.call("lead", "POST", "/v1/tasks", json={
        "event_id": "ev00001", "rubric": "harm", "overlap": 1}).json()["task_id"]
    assert c.call("r1", "POST", "/v1/queue/next").json()["task"]["task_id"] == task
    for path in (f"/v1/queue/tasks/{task}/submit", f"/v1/queue/tasks/{task}/submit?next=true"):
        refused = c.call("r1", "POST", path, json={"answers": {"notes": "unsure"}})
        assert refused.status_code == 422
        body = refused.json()
        assert body["error"]["field"] == "verdict"
        assert "field 'verdict': required" in body["detail"]
        assert "unanswered too: 'refusal', 'helpfulness'" in body["error"]["reason"]
    assert c.call("r1", "POST", f"/v1/queue/tasks/{task}/submit",
                  json={"answers": ALL_REQUIRED}).status_code == 200


def test_api_gold_item_names_every_unanswered_required_question(client: Client) -> None:
    refused = client.call("lead", "POST", "/v1/tasks/gold", json={
        "event_id": "ev00002", "rubric": "harm", "answers": {"verdict": "safe"}})
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["field"] == "refusal" and "'helpfulness'" in error["reason"]


def test_api_decision_names_every_bad_answer(client: Client) -> None:
    c = client
    task = c.call("lead", "POST", "/v1/tasks", json={
        "event_id": "ev00001", "rubric": "harm", "overlap": 2}).json()["task_id"]
    for rid, verdict in (("r1", "safe"), ("r2", "harmful")):
        assert c.call(rid, "POST", "/v1/queue/next").json()["task"]["task_id"] == task
        assert c.call(rid, "POST", f"/v1/queue/tasks/{task}/submit", json={
            "answers": {**ALL_REQUIRED, "verdict": verdict}}).status_code == 200
    refused = c.call("adj", "POST", f"/v1/adjudications/{task}", json={
        "answers": {"verdict": "safe", "refusal": "maybe", "helpfulness": 0},
        "rationale": "r", "cause": "subjective"})
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["field"] == "answers.refusal"
    assert "'answers.helpfulness': must be on the scale" in error["reason"]


def test_cli_submission_names_every_unanswered_required_question(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(db)
    migrate(engine)
    publish_examples(engine)
    add_reviewers(engine, ["a"])
    ingest(engine, [event(1)])

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, [*args, "--db", db])

    created = run("task", "create", "--event", "ev00001", "--rubric", "harm", "--overlap", "1")
    assert created.exit_code == 0, created.output
    assert run("queue", "next", "--reviewer", "a").exit_code == 0
    task = created.stdout.split('"task_id": "')[1].split('"')[0]
    answers = tmp_path / "a.json"
    answers.write_text('{\n  "verdict": "nope"\n}\n')
    out = run("review", "submit", task, "--reviewer", "a", "--answers", f"@{answers}")
    # in process the error reaches the runner (the installed command prints it, exit 2)
    assert isinstance(out.exception, InputError)
    message = str(out.exception)
    assert "a.json, line 2, field 'verdict': must be one of" in message
    assert "required, unanswered: 'refusal', 'helpfulness'" in message
    engine.dispose()
