"""Preference answers typed into the page forms: anything but a plain response index
redraws the page with a message (422); nothing is stored."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.events.ingest import ingest_events
from hilt.review.rubrics import latest_version, load_rubric_file, publish_rubric
from hilt.review.tasks import create_task
from hilt.store.db import transaction
from hilt.store.tables.review import AdjudicationRow, ReviewRow, ReviewTaskRow
from tests.web.asgi import sign_in
from tests.web.conftest import add_person
from tests.web.seed import review

PAIRWISE = Path(__file__).resolve().parents[2] / "examples" / "rubrics" / "pairwise.yaml"
BAD_INDICES = ["nan>1", "1e999>1", "0.9>1", "1.7>0", "-0>1", "1>inf", " >1", "١>0",
               "9" * 5000 + ">0"]


def _pair_task(engine: Engine, event_id: str, pool: str, overlap: int,
               responses: int = 2) -> str:
    with transaction(engine) as s:
        if latest_version(s, "pairwise") is None:
            publish_rubric(s, load_rubric_file(PAIRWISE), actor="lead-1")
    ingest_events(engine, [{"id": event_id, "interaction": {"prompt": "p"},
                            "responses": [{"text": "ABCD"[i]} for i in range(responses)],
                            "context": {"consent": ["review"]}}], actor="service")
    with transaction(engine) as s:
        return create_task(s, event_id=event_id, rubric="pairwise", actor="lead-1",
                           pool=pool, overlap_k=overlap)


def _message(page: str) -> str:
    found = re.search(r'id="form-error">(.*?)</div>', page, re.S)
    assert found, page[:500]
    return found.group(1)


def test_reviewer_preference_needs_plain_response_indices(client: TestClient,
                                                          engine: Engine) -> None:
    task_id = _pair_task(engine, "ev-pref", "pref", 1)
    csrf = sign_in(client, add_person(engine, "p-1", "reviewer", pools=["pref"]))
    claim = client.post("/ui/review/next", data={"csrf_token": csrf},
                        follow_redirects=False)
    assert claim.headers["location"].startswith(f"/ui/review/tasks/{task_id}")
    for value in BAD_INDICES:
        page = client.post(f"/ui/review/tasks/{task_id}/submit",
                           data={"csrf_token": csrf, "q.better": value})
        assert page.status_code == 422, (value, page.text[:200])
        assert page.headers["content-type"].startswith("text/html")
        assert "names no response" in _message(page.text)
    with transaction(engine) as s:
        assert s.execute(sa.select(ReviewRow).where(ReviewRow.task_id == task_id)
                         ).first() is None
    ok = client.post(f"/ui/review/tasks/{task_id}/submit",
                     data={"csrf_token": csrf, "q.better": "1>0"}, follow_redirects=False)
    assert ok.status_code == 303
    with transaction(engine) as s:
        stored = s.execute(sa.select(ReviewRow.answers).where(
            ReviewRow.task_id == task_id)).scalar_one()
    assert stored["better"] == {"chosen": 1, "rejected": 0}


def test_adjudicator_preference_needs_plain_response_indices(client: TestClient,
                                                             engine: Engine) -> None:
    task_id = _pair_task(engine, "ev-pair-adj", "pw", 2)
    for rid, chosen in (("pw-1", 0), ("pw-2", 1)):
        add_person(engine, rid, "reviewer", pools=["pw"])
        review(engine, rid, {"better": {"chosen": chosen, "rejected": 1 - chosen}})
    with transaction(engine) as s:
        assert s.get(ReviewTaskRow, task_id).status == "needs_adjudication"  # type: ignore[union-attr]
    csrf = sign_in(client, add_person(engine, "adj-1", "adjudicator"))
    decision = {"csrf_token": csrf, "cause": "subjective", "rationale": "A is clearer"}
    for value in BAD_INDICES:
        page = client.post(f"/ui/adjudicate/{task_id}", data={**decision, "q.better": value})
        assert page.status_code == 422, (value, page.text[:200])
        assert "names no response" in _message(page.text)
    with transaction(engine) as s:
        assert s.execute(sa.select(AdjudicationRow)).first() is None
    ok = client.post(f"/ui/adjudicate/{task_id}", data={**decision, "q.better": "0>1"},
                     follow_redirects=False)
    assert ok.status_code == 303


def _selected(page: str, name: str) -> list[str]:
    select = re.search(rf'<select id="{re.escape(name)}".*?</select>', page, re.S)
    assert select, page[:500]
    return re.findall(r'<option value="(\d+)" selected>', select.group(0))


def test_a_refused_submission_keeps_the_picked_responses_and_names_them_by_letter(
        client: TestClient, engine: Engine) -> None:
    task_id = _pair_task(engine, "ev-four", "four", 1, responses=4)
    csrf = sign_in(client, add_person(engine, "f-1", "reviewer", pools=["four"]))
    client.post("/ui/review/next", data={"csrf_token": csrf}, follow_redirects=False)
    same = client.post(f"/ui/review/tasks/{task_id}/submit", data={
        "csrf_token": csrf, "q.better.chosen": "2", "q.better.rejected": "2"})
    assert same.status_code == 422
    assert _selected(same.text, "q.better.chosen") == ["2"]
    assert _selected(same.text, "q.better.rejected") == ["2"]
    assert "the better and the worse response must differ" in html.unescape(
        _message(same.text))
    partial = client.post(f"/ui/review/tasks/{task_id}/submit", data={
        "csrf_token": csrf, "q.better.chosen": "3", "q.better.rejected": "0",
        "q.order": "A B"})
    assert partial.status_code == 422
    message = html.unescape(_message(partial.text))
    assert "every response A–D exactly once" in message and "0..3" not in message
    assert _selected(partial.text, "q.better.chosen") == ["3"]
    assert _selected(partial.text, "q.better.rejected") == ["0"]


def test_a_scale_wider_than_a_float_is_refused_in_the_editor(client: TestClient,
                                                            engine: Engine) -> None:
    csrf = sign_in(client, add_person(engine, "lead-1", "lead"))
    spec = ("id: wide\ntitle: wide scale\nquestions:\n  - {id: s, kind: scale, "
            "prompt: how much, min: -1.0e308, max: 1.0e308}\n")
    for action in ("preview", "publish"):
        page = client.post(f"/ui/lead/rubrics/{action}",
                           data={"csrf_token": csrf, "spec": spec}, follow_redirects=False)
        assert page.status_code == 422 and "too many steps" in page.text
    with transaction(engine) as s:
        assert latest_version(s, "wide") is None


@pytest.mark.parametrize(("spec", "where"), [
    ("id: lines\ntitle: line numbers\nquestions:\n  - id: v\n    kind: single_choice\n"
     "    prompt: ok?\n    options: [a, b]\n  - id: s\n    kind: scale\n    prompt: how\n"
     "    min: 0\n    max: 1\n    step: 0.3\n", "line 12, field 'questions.1.max'"),
    ("id: lines\ntitle: line numbers\nquestions:\n  - id: v\n    kind: single_choice\n"
     "    prompt: ok?\n    options: [a, b]\n  - id: v\n    kind: free_text\n"
     "    prompt: note\n", "line 8, field 'questions.1.id'"),
    ("id: lines\ntitle: line numbers\nquestions:\n  - id: v\n    kind: sinngle\n"
     "    prompt: ok?\n", "line 5")])
def test_rubric_editor_errors_name_their_line(client: TestClient, engine: Engine,
                                              spec: str, where: str) -> None:
    csrf = sign_in(client, add_person(engine, "lead-1", "lead"))
    page = client.post("/ui/lead/rubrics/preview", data={"csrf_token": csrf, "spec": spec})
    assert page.status_code == 422
    assert where in html.unescape(page.text), page.text[-2000:]
