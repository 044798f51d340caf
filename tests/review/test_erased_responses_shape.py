"""An erased event's item reads the same everywhere: the reviewer's task view and the
case file (which the adjudication page shows), in Python, over HTTP and on the command
line, give no interaction (null) and no responses (an empty list, never null)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.api.app import create_app
from hilt.cli import app
from hilt.data.forget import forget
from hilt.review import work
from hilt.review.adjudication import case_file
from hilt.review.reviews import Submission
from hilt.review.tasks import create_task
from hilt.review.views import reviewer_task_view
from hilt.store.db import transaction
from tests.api.conftest import calibrated

from .helpers import event, ingest, publish_examples

SAFE = {"verdict": "safe", "refusal": "complies", "helpfulness": 4}


def _reviewed_then_erased(engine: Engine) -> tuple[str, dict[str, str]]:
    """ev00000 (subject zed, two responses) reviewed alike by r1 and r2 (resolved), then
    forgotten; returns the task id and the API tokens."""
    publish_examples(engine)
    ev = event(0, responses=2)
    ev["context"]["subject_id"] = "zed"
    ingest(engine, [ev])
    with transaction(engine) as s:
        tokens = calibrated(s, [("r1", "reviewer"), ("r2", "reviewer"),
                                ("adj", "adjudicator")])
        tid = create_task(s, event_id="ev00000", rubric="harm", actor="lead",
                          overlap_k=2)
    for rid, answers in (("r1", SAFE), ("r2", SAFE)):
        found = work.next_task(engine, rid)
        assert found is not None and found.claim.task_id == tid
        work.submit(engine, tid, rid, Submission(answers))
    with transaction(engine) as s:  # before the erasure the item has its responses
        assert len(case_file(s, tid)["item"]["responses"]) == 2
    forget(engine, "zed", actor="dpo")
    return tid, tokens


def test_erased_item_is_the_same_in_task_view_and_case_file(engine: Engine,
                                                             db_url: str) -> None:
    tid, tokens = _reviewed_then_erased(engine)
    with transaction(engine) as s:
        # a resolved task keeps its case file after the erasure
        assert case_file(s, tid)["status"] == "resolved"
        view = reviewer_task_view(s, tid, "r1")

    with TestClient(create_app(engine)) as http:
        def get(who: str, path: str) -> dict[str, Any]:
            reply = http.get(path, headers={"Authorization": f"Bearer {tokens[who]}"})
            assert reply.status_code == 200, reply.text
            return reply.json()

        task_item = get("r1", f"/v1/queue/tasks/{tid}")["item"]
        case_item = get("adj", f"/v1/adjudications/{tid}")["item"]
    cli = CliRunner().invoke(app, ["adjudicate", "show", tid, "--db", db_url])
    assert cli.exit_code == 0, cli.output
    cli_item = json.loads(cli.stdout)["item"]

    assert task_item == view["item"] == {"interaction": None, "responses": []}
    for item in (case_item, cli_item):
        assert item == {"event_id": "ev00000", "interaction": None, "responses": []}
