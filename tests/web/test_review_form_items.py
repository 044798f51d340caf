"""The review form on items with one or several responses: a preference question that
cannot apply, half a preference, every unanswered question named, and which response the
rewrite editor starts from."""

from __future__ import annotations

import html
import re

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.store.db import transaction
from hilt.store.tables.review import ReviewRow
from tests.web.asgi import sign_in
from tests.web.conftest import add_person
from tests.web.seed import add_task, event, publish_harm, publish_pick

FOUR = ["Apple.", "Banana.", "A car.", "idk"]


def _message(page: str) -> str:
    found = re.search(r'id="form-error">(.*?)</div>', page, re.S)
    assert found, page[:500]
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))


def _claimed(client: TestClient, engine: Engine, pool: str, task_id: str) -> str:
    """Sign in a reviewer of ``pool`` who leases ``task_id``; their CSRF token."""
    csrf = sign_in(client, add_person(engine, f"{pool}-rev", "reviewer", pools=[pool]))
    claim = client.post("/ui/review/next", data={"csrf_token": csrf},
                        follow_redirects=False)
    assert claim.headers["location"].startswith(f"/ui/review/tasks/{task_id}")
    return csrf


def _stored(engine: Engine, task_id: str) -> list[dict[str, object]]:
    with transaction(engine) as s:
        return [dict(a) for a in s.execute(sa.select(ReviewRow.answers).where(
            ReviewRow.task_id == task_id)).scalars()]


def test_a_preference_on_a_one_response_item_is_not_applicable(client: TestClient,
                                                              engine: Engine) -> None:
    publish_pick(engine)
    task_id = add_task(engine, event("ev-one", prompt="p", response="only one"),
                       pool="one", overlap=1, rubric="pick")
    csrf = _claimed(client, engine, "one", task_id)
    page = client.get(f"/ui/review/tasks/{task_id}").text
    field = re.search(r'<fieldset[^>]*id="field-better".*?</fieldset>', page, re.S)
    assert field, page
    # shown as not applicable, with nothing to pick (no "A" against "A")
    assert "not applicable" in field.group(0)
    assert 'name="q.better' not in page and "<select" not in field.group(0)
    assert "data-question" not in field.group(0)  # no stop for the keyboard
    # an answer to it is still refused, as through the API
    refused = client.post(f"/ui/review/tasks/{task_id}/submit", data={
        "csrf_token": csrf, "q.harmful": "no", "q.approve": "approve", "q.better": "0>0"})
    assert refused.status_code == 422 and _stored(engine, task_id) == []
    done = client.post(f"/ui/review/tasks/{task_id}/submit", follow_redirects=False,
                       data={"csrf_token": csrf, "q.harmful": "no", "q.approve": "approve"})
    assert done.status_code == 303, done.text[:300]
    assert _stored(engine, task_id) == [{"harmful": "no", "approve": "approve"}]


def test_half_a_preference_is_refused_naming_the_question(client: TestClient,
                                                         engine: Engine) -> None:
    publish_pick(engine)
    task_id = add_task(engine, event("ev-four", prompt="Name a fruit.", response=FOUR),
                       pool="four", overlap=1, rubric="pick")
    csrf = _claimed(client, engine, "four", task_id)
    answers = {"csrf_token": csrf, "q.harmful": "no", "q.approve": "approve"}
    for picked, missing in (({"q.better.chosen": "1", "q.better.rejected": ""}, "worse"),
                            ({"q.better.chosen": "", "q.better.rejected": "2"}, "better")):
        page = client.post(f"/ui/review/tasks/{task_id}/submit", data={**answers, **picked})
        assert page.status_code == 422, page.text[:300]
        message = _message(page.text)
        assert message.startswith("Not saved. Which response is better?: "), message
        assert f"pick the {missing} response too" in message
        # the form keeps what was picked
        kept = next(v for v in picked.values() if v)
        assert re.search(rf'<option value="{kept}" selected>', page.text)
        assert 'value="no" checked' in page.text
    assert _stored(engine, task_id) == []
    done = client.post(f"/ui/review/tasks/{task_id}/submit", follow_redirects=False,
                       data={**answers, "q.better.chosen": "1", "q.better.rejected": "2"})
    assert done.status_code == 303
    assert _stored(engine, task_id) == [{"harmful": "no", "approve": "approve",
                                         "better": {"chosen": 1, "rejected": 2}}]


def test_a_refusal_names_every_unanswered_question(client: TestClient,
                                                  engine: Engine) -> None:
    publish_harm(engine)
    task_id = add_task(engine, event("ev-all", prompt="p", response="r"), pool="all",
                       overlap=1)
    csrf = _claimed(client, engine, "all", task_id)
    page = client.post(f"/ui/review/tasks/{task_id}/submit",
                       data={"csrf_token": csrf, "q.refusal": "complies"})
    assert page.status_code == 422
    message = _message(page.text)
    assert message == ("Not saved. Is the response harmful?: this question is required "
                       "(unanswered too: How helpful is the response to a benign user?)")


def test_the_rewrite_editor_says_which_response_it_starts_from(client: TestClient,
                                                             engine: Engine) -> None:
    publish_pick(engine)
    task_id = add_task(engine, event("ev-rw", prompt="Name a fruit.", response=FOUR),
                       pool="rw", overlap=1, rubric="pick")
    _claimed(client, engine, "rw", task_id)
    page = html.unescape(client.get(f"/ui/review/tasks/{task_id}").text)
    editor = re.search(r'<details class="rewrite".*?</details>', page, re.S)
    assert editor, page
    assert "Your improved response A" in editor.group(0)
    assert "The editor starts with response A" in editor.group(0)
    assert re.search(r'<textarea id="rewrite"[^>]*>Apple\.</textarea>', editor.group(0))


def test_a_one_response_rewrite_names_no_letter(client: TestClient, engine: Engine) -> None:
    publish_harm(engine)
    task_id = add_task(engine, event("ev-rw1", prompt="p", response="r"), pool="rw1",
                       overlap=1)
    _claimed(client, engine, "rw1", task_id)
    page = client.get(f"/ui/review/tasks/{task_id}").text
    assert "Your improved response (leave unchanged to skip)" in page
    assert 'id="rewrite-of"' not in page
