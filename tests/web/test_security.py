"""Session, CSRF, headers and role checks of the pages, over the ASGI app (no browser)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import routes_without_roles
from hilt.store.db import transaction
from hilt.web.security import csrf_token_for
from tests.web.asgi import BASE, sign_in
from tests.web.conftest import add_person
from tests.web.seed import publish_harm


@pytest.fixture
def people(engine: Engine) -> dict[str, str]:
    publish_harm(engine)
    tokens = {role: add_person(engine, f"{role}-1", role)
              for role in ("reviewer", "adjudicator", "lead")}
    with transaction(engine) as s:
        tokens["service"] = create_token(s, role="service")[1]
    return tokens


def test_every_page_declares_roles_and_only_signin_is_public(client: TestClient) -> None:
    assert routes_without_roles(client.app) == []  # type: ignore[arg-type]
    assert client.app.state.public_paths == {"/healthz", "/", "/ui/signin"}  # type: ignore[attr-defined]


def test_session_cookie_flags_and_headers(client: TestClient, people: dict[str, str]
                                          ) -> None:
    page = client.get("/ui/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    response = client.post("/ui/signin", data={"token": people["reviewer"],
                                               "csrf_token": csrf}, follow_redirects=False)
    cookie = next(v for k, v in response.headers.multi_items()
                  if k == "set-cookie" and v.startswith("hilt_token="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    home = client.get("/ui/review")
    assert home.status_code == 200
    csp = home.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "img-src 'self' data:" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert home.headers["x-frame-options"] == "DENY"
    assert home.headers["cache-control"] == "no-store"
    # Every POST form on the page carries the session's CSRF token.
    forms = re.findall(r'<form method="post".*?</form>', home.text, re.S)
    csrf = csrf_token_for(client.cookies["hilt_token"])
    assert forms and all(csrf in f for f in forms)


def test_signin_refuses_bad_token_and_forged_form(client: TestClient,
                                                  people: dict[str, str]) -> None:
    page = client.get("/ui/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    bad = client.post("/ui/signin", data={"token": "hilt_nope", "csrf_token": csrf})
    assert bad.status_code == 401 and "not valid" in bad.text
    forged = client.post("/ui/signin", data={"token": people["reviewer"],
                                             "csrf_token": "x" * 64})
    assert forged.status_code == 403 and "hilt_token" not in forged.headers.get(
        "set-cookie", "")
    service = client.post("/ui/signin", data={"token": people["service"],
                                              "csrf_token": csrf})
    assert service.status_code == 403


def test_state_changes_with_the_cookie_need_the_csrf_token(client: TestClient,
                                                          people: dict[str, str]) -> None:
    csrf = sign_in(client, people["reviewer"])
    # Page form without the token: refused before any handler runs.
    assert client.post("/ui/review/next", data={}).status_code == 403
    assert client.post("/ui/review/next", data={"csrf_token": "0" * 64}).status_code == 403
    ok = client.post("/ui/review/next", data={"csrf_token": csrf}, follow_redirects=False)
    assert ok.status_code == 303
    # The API also accepts the cookie, so it gets the same protection ...
    assert client.post("/v1/queue/next").status_code == 403
    assert client.post("/v1/queue/next", headers={"X-CSRF-Token": csrf}).status_code == 200
    # ... while Bearer clients are unaffected.
    bearer = {"Authorization": f"Bearer {people['reviewer']}"}
    fresh = TestClient(client.app, base_url=BASE)
    assert fresh.post("/v1/queue/next", headers=bearer).status_code == 200


@pytest.mark.parametrize("authorization", [
    "Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "bearer  two words", "Token abc", ""])
def test_only_a_well_formed_bearer_header_sets_the_cookie_aside(
        client: TestClient, people: dict[str, str], authorization: str) -> None:
    """Any other Authorization header neither skips the CSRF check of a cookie session
    nor lets the cookie authenticate: the request is refused."""
    csrf = sign_in(client, people["reviewer"])
    header = {"Authorization": authorization}
    assert client.post("/ui/review/next", data={}, headers=header).status_code == 403
    assert client.post("/v1/queue/next", headers=header).status_code == 403
    with_csrf = client.post("/v1/queue/next", headers={**header, "X-CSRF-Token": csrf})
    assert with_csrf.status_code == 401 and "Bearer" in with_csrf.headers[
        "www-authenticate"]
    assert client.get("/v1/reviews/mine", headers=header).status_code == 401
    # Bearer with a token: that token alone authenticates (the lead's, not the cookie's
    # reviewer: a lead-only route answers), and no CSRF token is needed.
    lead = {"Authorization": f"bearer {people['lead']}"}
    assert client.get("/v1/queue/stats", headers=lead).status_code == 200
    assert client.post("/v1/queue/triage", headers=lead).status_code == 200


def test_pages_redirect_to_signin_and_check_roles(client: TestClient,
                                                  people: dict[str, str]) -> None:
    anonymous = client.get("/ui/lead", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/ui/signin?next=/ui/lead"
    sign_in(client, people["reviewer"])
    assert client.get("/ui/lead").status_code == 403
    assert client.get("/ui/adjudicate").status_code == 403
    assert client.get("/ui/review/tasks/nope").status_code == 404


def test_signin_never_redirects_off_site(client: TestClient, people: dict[str, str]) -> None:
    for target in ("https://evil.example/", "//evil.example/ui/x", "/ui/../../x//y"):
        page = client.get("/ui/signin", params={"next": target})
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        response = client.post("/ui/signin", data={"token": people["lead"],
                                                   "csrf_token": csrf, "next": target},
                               follow_redirects=False)
        assert response.headers["location"] == "/ui/lead"


def test_page_refusals_before_any_handler_are_html_pages(client: TestClient,
                                                         people: dict[str, str]) -> None:
    sign_in(client, people["lead"])
    missing = client.post("/ui/review/next", data={})
    too_big = client.post("/ui/lead/rubrics/preview",
                          data={"csrf_token": "x", "spec": "a" * (3 * 1024 * 1024)})
    for page, status, why in ((missing, 403, "CSRF token"),
                              (too_big, 413, "form too large")):
        assert page.status_code == status
        assert page.headers["content-type"].startswith("text/html")
        assert "<html" in page.text and why in page.text
        assert page.headers["x-frame-options"] == "DENY"
    # the API keeps its plain answer
    api = client.post("/v1/queue/next")
    assert api.status_code == 403 and api.headers["content-type"].startswith("text/plain")
