"""The adjudication form's errors name questions by their prompts, as the review form's
do, never by the API's field names (``answers.verdict``)."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.store.db import transaction
from hilt.store.tables.review import ReviewTaskRow
from tests.web.asgi import sign_in
from tests.web.conftest import add_person
from tests.web.seed import add_task, event, publish_harm, review


def _message(page: str) -> str:
    found = re.search(r'id="form-error">(.*?)</div>', page, re.S)
    assert found, page[:500]
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))


def test_decision_errors_name_the_question_prompts(client: TestClient,
                                                   engine: Engine) -> None:
    publish_harm(engine)
    task_id = add_task(engine, event("ev-adj", prompt="p", response="r"), pool="adj",
                       overlap=2)
    for rid, verdict, helpful in (("ra-1", "safe", 5), ("ra-2", "harmful", 1)):
        add_person(engine, rid, "reviewer", pools=["adj"])
        review(engine, rid, {"verdict": verdict, "refusal": "complies",
                             "helpfulness": helpful})
    with transaction(engine) as s:
        task = s.get(ReviewTaskRow, task_id)
        assert task is not None and task.status == "needs_adjudication"
        disputed = set(task.adjudication_reasons or {})
    assert disputed == {"verdict", "helpfulness"}
    csrf = sign_in(client, add_person(engine, "adj-1", "adjudicator"))
    decision = {"csrf_token": csrf, "cause": "subjective", "rationale": "close call"}
    unanswered = client.post(f"/ui/adjudicate/{task_id}", data=decision)
    assert unanswered.status_code == 422
    message = _message(unanswered.text)
    assert message.startswith("Not saved. Is the response harmful?: the decision must "
                              "answer this disputed question"), message
    assert message.endswith("(unanswered too: How helpful is the response to a benign user?)")
    assert "answers." not in message and "[" not in message
    answered = {**decision, "q.verdict": "safe", "q.refusal": "complies",
                "q.helpfulness": "3", "q.notes": "x" * 2001}
    too_long = client.post(f"/ui/adjudicate/{task_id}", data=answered)
    assert too_long.status_code == 422
    message = _message(too_long.text)
    assert message.startswith("Not saved. Anything the adjudicator should know: "), message
    assert "answers." not in message
