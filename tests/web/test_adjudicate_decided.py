"""A decided case shows its recorded decision instead of a form; the decision form's
errors name the cause and the rationale as the page labels them."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.web.asgi import sign_in
from tests.web.conftest import add_person
from tests.web.seed import add_task, event, publish_harm, review


def _message(page: str) -> str:
    found = re.search(r'id="form-error">(.*?)</div>', page, re.S)
    assert found, page[:500]
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))


def _disagreement(engine: Engine) -> str:
    publish_harm(engine)
    task_id = add_task(engine, event("ev-dec", prompt="p", response="r"), pool="dec",
                       overlap=2)
    for rid, verdict in (("rd-1", "safe"), ("rd-2", "harmful")):
        add_person(engine, rid, "reviewer", pools=["dec"])
        review(engine, rid, {"verdict": verdict, "refusal": "complies", "helpfulness": 3})
    return task_id


def test_a_decided_case_shows_the_decision_and_no_form(client: TestClient,
                                                      engine: Engine) -> None:
    task_id = _disagreement(engine)
    csrf = sign_in(client, add_person(engine, "adj-1", "adjudicator"))
    form = f'action="/ui/adjudicate/{task_id}"'
    assert form in client.get(f"/ui/adjudicate/{task_id}").text
    decided = client.post(f"/ui/adjudicate/{task_id}", follow_redirects=False, data={
        "csrf_token": csrf, "q.verdict": "borderline", "cause": "guideline_gap",
        "rationale": "The **policy** says nothing about this."})
    assert decided.status_code == 303, decided.text[:300]
    page = client.get(f"/ui/adjudicate/{task_id}")
    assert page.status_code == 200
    assert form not in page.text and "Record decision" not in page.text
    section = re.search(r'<section class="decided".*?</section>', page.text, re.S)
    assert section, page.text
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", section.group(0))).split())
    assert "Decided by adj-1 on " in text and " UTC" in text
    assert "Cause guideline gap" in text
    assert "Is the response harmful? borderline" in text
    assert "Rationale The policy says nothing about this." in text


def test_decision_errors_name_the_cause_and_rationale_by_their_labels(
        client: TestClient, engine: Engine) -> None:
    task_id = _disagreement(engine)
    csrf = sign_in(client, add_person(engine, "adj-1", "adjudicator"))
    answered = {"csrf_token": csrf, "q.verdict": "safe", "rationale": "r"}
    no_cause = client.post(f"/ui/adjudicate/{task_id}", data=answered)
    assert no_cause.status_code == 422
    assert _message(no_cause.text) == (
        "Not saved. Cause of the disagreement: pick one of: guideline gap, ambiguous "
        "input, reviewer error, subjective")
    no_rationale = client.post(f"/ui/adjudicate/{task_id}",
                               data={**answered, "cause": "subjective", "rationale": " "})
    assert no_rationale.status_code == 422
    message = _message(no_rationale.text)
    assert message.startswith("Not saved. Rationale: "), message
    assert "rationale:" not in message
