"""Getting around the pages: form addresses opened from the address bar, error pages
with navigation, signing in again after the session ended, sign-in's ``next``, and who
is offered which link."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token, end_session
from hilt.store.db import transaction
from tests.web.asgi import sign_in, signin_csrf
from tests.web.conftest import add_person
from tests.web.seed import add_task, event, publish_harm

NAV = '<nav aria-label="Main">'


@pytest.mark.parametrize(("address", "page"), [
    ("/ui/review/tasks/task_1/submit", "/ui/review/tasks/task_1"),
    ("/ui/review/tasks/task_1/skip", "/ui/review/tasks/task_1"),
    ("/ui/review/next", "/ui/review"),
    ("/ui/lead/rubrics/preview", "/ui/lead/rubrics"),
    ("/ui/lead/rubrics/publish", "/ui/lead/rubrics"),
    ("/ui/lead/gate/abc123/signoff", "/ui/lead/gate/abc123"),
    ("/ui/lead/drift/da-1/ack", "/ui/lead"),
    ("/ui/signout", "/ui/")])
def test_a_form_address_opened_in_the_address_bar_goes_to_its_page(
        client: TestClient, engine: Engine, address: str, page: str) -> None:
    sign_in(client, add_person(engine, "lead-1", "lead"))
    response = client.get(address, follow_redirects=False)
    assert response.status_code == 303, response.text[:300]
    assert response.headers["location"] == page
    # opening /ui/signout did not sign out (only the form's POST does)
    assert client.get("/ui/lead").status_code == 200


def test_not_found_pages_carry_the_navigation(client: TestClient, engine: Engine) -> None:
    sign_in(client, add_person(engine, "lead-1", "lead"))
    for address in ("/ui/no-such-page", "/ui/lead/gate/abc/signoff/more"):
        page = client.get(address)
        assert page.status_code == 404
        assert NAV in page.text and 'href="/ui/lead"' in page.text
        assert "lead-1 · lead" in page.text


def test_a_form_sent_after_the_session_ended_leads_back_to_its_task(
        client: TestClient, engine: Engine) -> None:
    publish_harm(engine)
    task_id = add_task(engine, event("ev-late", prompt="p", response="r"), pool="late",
                       overlap=1)
    token = add_person(engine, "late-1", "reviewer", pools=["late"])
    csrf = sign_in(client, token)
    assert client.post("/ui/review/next", data={"csrf_token": csrf},
                       follow_redirects=False).status_code == 303
    with transaction(engine) as s:  # the session ends on the server (expiry, sign-out)
        end_session(s, client.cookies["hilt_token"])
    page = client.post(f"/ui/review/tasks/{task_id}/submit",
                       data={"csrf_token": csrf, "q.verdict": "safe"})
    assert page.status_code == 401
    link = re.search(r'<a href="([^"]+)" class="way-on">', page.text)
    assert link, page.text
    target = html.unescape(link.group(1))
    assert urlsplit(target).path == "/ui/signin"
    back = parse_qs(urlsplit(target).query)["next"][0]
    assert back == f"/ui/review/tasks/{task_id}"
    # signing in there returns to the task, whose lease is still held
    client.get(target)
    signed = client.post("/ui/signin", follow_redirects=False, data={
        "token": token, "csrf_token": signin_csrf(client, "?next=" + back), "next": back})
    assert signed.headers["location"] == back
    task_page = client.get(back)
    assert task_page.status_code == 200 and 'id="review-form"' in task_page.text


def test_sign_in_returns_to_the_address_with_its_query(client: TestClient,
                                                       engine: Engine) -> None:
    token = add_person(engine, "lead-1", "lead")
    start = client.get("/ui/lead/rubrics?id=harm", follow_redirects=False)
    assert start.status_code == 303
    signin = start.headers["location"]
    back = parse_qs(urlsplit(signin).query)["next"][0]
    assert back == "/ui/lead/rubrics?id=harm"
    form = client.get(signin).text
    assert 'name="next" value="/ui/lead/rubrics?id=harm"' in html.unescape(form)
    signed = client.post("/ui/signin", follow_redirects=False, data={
        "token": token, "csrf_token": signin_csrf(client), "next": back})
    assert signed.headers["location"] == "/ui/lead/rubrics?id=harm"


def test_a_refused_sign_in_does_not_speak_of_saving(client: TestClient) -> None:
    page = client.post("/ui/signin", data={"token": "hilt_wrong",
                                           "csrf_token": signin_csrf(client)})
    assert page.status_code == 401
    assert "Not saved." not in page.text
    assert "Not signed in.</strong> That token is not valid" in page.text


def test_a_token_without_reviewer_identity_gets_no_queue_link(client: TestClient,
                                                              engine: Engine) -> None:
    with transaction(engine) as s:
        _, secret = create_token(s, role="admin", name="ops")
    sign_in(client, secret)
    page = client.get("/ui/lead")
    assert page.status_code == 200
    assert 'href="/ui/lead"' in page.text and 'href="/ui/review"' not in page.text


def test_a_person_with_an_identity_keeps_the_queue_link(client: TestClient,
                                                        engine: Engine) -> None:
    sign_in(client, add_person(engine, "lead-1", "lead"))
    assert 'href="/ui/review"' in client.get("/ui/lead").text


def test_a_forbidden_page_speaks_of_pages(client: TestClient, engine: Engine) -> None:
    sign_in(client, add_person(engine, "rev-1", "reviewer"))
    page = client.get("/ui/lead")
    assert page.status_code == 403
    assert "may not open this page" in page.text and "endpoint" not in page.text
    assert NAV in page.text


def test_every_form_address_has_a_page_to_go_back_to() -> None:
    from hilt.web import routes_adjudicate, routes_lead, routes_review
    from hilt.web.pages import form_page

    methods: dict[str, set[str]] = {}
    for module in (routes_review, routes_adjudicate, routes_lead):
        for route in module.router.routes:
            methods.setdefault(route.path, set()).update(route.methods)  # type: ignore[attr-defined]
    post_only = [path for path, m in methods.items() if "GET" not in m]
    assert len(post_only) >= 9
    assert [p for p in post_only if form_page(re.sub(r"[{}]", "", p)) is None] == []
