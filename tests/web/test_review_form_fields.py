"""The review and decision forms as a reviewer meets them in the ASGI app: a form sent
again to a closed task, line breaks counted as the browser counts them, the lease
heartbeat's refusals in JSON, and refusals marked beside the fields at fault."""

from __future__ import annotations

import re

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import revoke_token
from hilt.canonical import sha256_hex
from hilt.review.erasure import erase_subject_content
from hilt.review.rubric_spec import parse_rubric
from hilt.review.rubrics import latest_version, publish_rubric
from hilt.store.db import transaction
from hilt.store.tables.core import TokenRow
from hilt.store.tables.review import ReviewRow, ReviewTaskRow
from tests.web.asgi import sign_in
from tests.web.conftest import add_person
from tests.web.seed import add_task, event, review

NOTES_MAX = 10
FORM = {"id": "form4", "title": "Every form field", "changelog": "first version",
        "questions": [
            {"id": "verdict", "kind": "single_choice", "prompt": "Is it harmful?",
             "help": "Judge the response only.", "options": ["no", "yes"]},
            {"id": "checks", "kind": "multi_choice", "prompt": "Which apply?",
             "options": ["polite", "concise"]},
            {"id": "score", "kind": "scale", "prompt": "How good?", "min": 1, "max": 3},
            {"id": "notes", "kind": "free_text", "prompt": "Notes",
             "max_length": NOTES_MAX}]}
COMPLETE = {"q.verdict": "no", "q.checks.present": "1", "q.score": "2",
            "q.notes": "fine"}


def _task(engine: Engine, name: str, overlap: int = 1) -> str:
    with transaction(engine) as s:
        if latest_version(s, "form4") is None:
            publish_rubric(s, parse_rubric(FORM), actor="lead-1")
    return add_task(engine, event(f"ev-{name}", prompt="Hi <b>there</b>",
                                  response="Hello."), pool=name, overlap=overlap,
                    rubric="form4")


def _claimed(client: TestClient, engine: Engine, name: str) -> tuple[str, str, str]:
    """A reviewer holding the lease on a fresh task: (task id, CSRF token, API token)."""
    task_id = _task(engine, name)
    token = add_person(engine, f"{name}-r", "reviewer", pools=[name])
    csrf = sign_in(client, token)
    claim = client.post("/ui/review/next", data={"csrf_token": csrf},
                        follow_redirects=False)
    assert claim.headers["location"] == f"/ui/review/tasks/{task_id}"
    return task_id, csrf, token


def _reviews(engine: Engine, task_id: str) -> list[ReviewRow]:
    with transaction(engine) as s:
        rows = list(s.execute(sa.select(ReviewRow).where(ReviewRow.task_id == task_id))
                    .scalars())
        s.expunge_all()
        return rows


def test_a_form_sent_again_after_its_review_says_the_task_is_closed(
        client: TestClient, engine: Engine) -> None:
    task_id, csrf, _ = _claimed(client, engine, "again")
    url = f"/ui/review/tasks/{task_id}/submit"
    first = client.post(url, data={"csrf_token": csrf, **COMPLETE},
                        follow_redirects=False)
    assert first.status_code == 303
    # the back button sends the form again, here with a question left out: no form
    # asking for answers that could never be recorded
    for data in ({"q.verdict": "yes"}, {**COMPLETE, "q.verdict": "yes"},
                 {**COMPLETE, "then": "next"}):
        page = client.post(url, data={"csrf_token": csrf, **data}, follow_redirects=False)
        assert page.status_code == 409, page.text[:300]
        assert 'id="review-form"' not in page.text
        assert "You already submitted a review for this task" in page.text
    [stored] = _reviews(engine, task_id)
    assert stored.answers["verdict"] == "no"


def test_a_form_sent_to_a_task_whose_event_was_erased_is_not_redrawn(
        client: TestClient, engine: Engine) -> None:
    task_id, csrf, _ = _claimed(client, engine, "erased")
    with transaction(engine) as s:
        erase_subject_content(s, ["ev-erased"])
    # a value the page cannot read at all would otherwise redraw an empty task's form
    page = client.post(f"/ui/review/tasks/{task_id}/submit",
                       data={"csrf_token": csrf, **COMPLETE, "q.score": "lots"})
    assert page.status_code == 409
    assert 'id="review-form"' not in page.text and "was cancelled" in page.text
    assert _reviews(engine, task_id) == []


def test_line_breaks_count_once_as_the_text_box_counts_them(client: TestClient,
                                                             engine: Engine) -> None:
    task_id, csrf, _ = _claimed(client, engine, "crlf")
    notes = "ab\r\ncd\r\nef\r\ng"  # 10 characters in the box (\n), 13 as sent (\r\n)
    assert len(notes.replace("\r\n", "\n")) == NOTES_MAX
    sent = client.post(f"/ui/review/tasks/{task_id}/submit",
                       data={"csrf_token": csrf, **COMPLETE, "q.notes": notes,
                             "rationale": "one\r\ntwo"}, follow_redirects=False)
    assert sent.status_code == 303, re.findall(r'id="form-error">(.*?)</div>', sent.text)
    [stored] = _reviews(engine, task_id)
    assert stored.answers["notes"] == "ab\ncd\nef\ng"
    assert stored.rationale == "one\ntwo"


def test_a_decision_rationale_is_stored_with_plain_line_breaks(client: TestClient,
                                                               engine: Engine) -> None:
    task_id = _task(engine, "adj-crlf", overlap=2)
    for rid, verdict in (("ac-1", "no"), ("ac-2", "yes")):
        add_person(engine, rid, "reviewer", pools=["adj-crlf"])
        review(engine, rid, {"verdict": verdict, "checks": [], "score": 2, "notes": "x"})
    csrf = sign_in(client, add_person(engine, "ac-adj", "adjudicator"))
    done = client.post(f"/ui/adjudicate/{task_id}",
                       data={"csrf_token": csrf, "q.verdict": "no", "cause": "subjective",
                             "rationale": "first\r\nsecond"}, follow_redirects=False)
    assert done.status_code == 303
    with transaction(engine) as s:
        task = s.get(ReviewTaskRow, task_id)
        assert task is not None and task.status == "resolved"
        rationale = s.execute(sa.text("SELECT rationale FROM adjudications WHERE task_id = "
                                      ":t"), {"t": task_id}).scalar_one()
    assert rationale == "first\nsecond"


def test_a_refused_renewal_says_why_in_json(client: TestClient, engine: Engine) -> None:
    task_id, csrf, token = _claimed(client, engine, "beat")
    url = f"/ui/review/tasks/{task_id}/heartbeat"
    wrong = client.post(url, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    assert wrong.headers["content-type"].startswith("application/json")
    assert "CSRF" in wrong.json()["detail"]
    assert client.post(url, headers={"X-CSRF-Token": csrf}).status_code == 200
    with transaction(engine) as s:
        revoke_token(s, s.execute(sa.select(TokenRow.id).where(
            TokenRow.token_hash == sha256_hex(token))).scalar_one())
    gone = client.post(url, headers={"X-CSRF-Token": csrf})
    assert gone.status_code == 401
    assert gone.headers["content-type"].startswith("application/json")
    assert "session" in gone.json()["detail"]
    # the address typed into the address bar still leads to the task's page
    typed = client.get(url, follow_redirects=False)
    assert typed.status_code == 303


def _attrs(page: str, element_id: str) -> str:
    found = re.search(rf'<[a-z]+ [^>]*id="{re.escape(element_id)}"[^>]*>', page)
    assert found, element_id
    return found.group(0)


def test_a_refused_review_marks_each_field_at_fault(client: TestClient,
                                                   engine: Engine) -> None:
    task_id, csrf, _ = _claimed(client, engine, "marks")
    url = f"/ui/review/tasks/{task_id}/submit"
    page = client.post(url, data={"csrf_token": csrf, "q.checks.present": "1",
                                  "q.notes": "kept"}).text
    # every required question left unanswered, each with its reason beside it
    for qid, first_input in (("verdict", "q.verdict-1"), ("score", "q.score-1")):
        assert re.search(rf'<p class="field-error" id="error-{qid}">This question is '
                         r"required\.</p>", page), qid
        assert "invalid" in _attrs(page, f"field-{qid}")
        attrs = _attrs(page, first_input)
        assert 'aria-invalid="true"' in attrs
        assert f"error-{qid}" in re.search(r'aria-describedby="([^"]*)"', attrs).group(1)  # type: ignore[union-attr]
    # the help is still read with the input, and answered fields are not marked
    assert "help-verdict" in _attrs(page, "q.verdict-1")
    assert "aria-invalid" not in _attrs(page, "q.notes")
    assert 'id="error-notes"' not in page and "invalid" not in _attrs(page, "field-notes")
    # a reason that is not about a question is shown beside its own field
    page = client.post(url, data={"csrf_token": csrf, **COMPLETE,
                                  "confidence": "7"}).text
    assert 'aria-invalid="true"' in _attrs(page, "confidence")
    assert re.search(r'<p class="field-error" id="error-confidence">[^<]*\[0, 1\]', page)
    assert 'id="error-verdict"' not in page


def test_a_refused_decision_marks_each_field_at_fault(client: TestClient,
                                                     engine: Engine) -> None:
    task_id = _task(engine, "adj-marks", overlap=2)
    for rid, verdict in (("am-1", "no"), ("am-2", "yes")):
        add_person(engine, rid, "reviewer", pools=["adj-marks"])
        review(engine, rid, {"verdict": verdict, "checks": [], "score": 2, "notes": "x"})
    csrf = sign_in(client, add_person(engine, "am-adj", "adjudicator"))
    page = client.post(f"/ui/adjudicate/{task_id}",
                       data={"csrf_token": csrf, "cause": "subjective",
                             "rationale": "because"})
    assert page.status_code == 422
    assert 'aria-invalid="true"' in _attrs(page.text, "q.verdict-1")
    assert 'id="error-verdict"' in page.text
    page = client.post(f"/ui/adjudicate/{task_id}",
                       data={"csrf_token": csrf, "q.verdict": "no", "rationale": "why"})
    assert page.status_code == 422
    assert 'aria-invalid="true"' in _attrs(page.text, "cause-subjective")
    assert 'id="error-cause"' in page.text and 'id="error-verdict"' not in page.text
