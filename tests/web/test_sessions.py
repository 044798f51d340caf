"""Page sessions: the cookie is a server-side session that sign-out, expiry and token
revocation end; the sign-in redirect; HTML error pages for every error on /ui paths."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError

from hilt.access import revoke_token, set_reviewer_active, start_session
from hilt.api.app import create_app
from hilt.canonical import sha256_hex
from hilt.review import views
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import TokenRow, WebSessionRow
from hilt.web.security import csrf_token_for
from tests.web.asgi import BASE, signin_csrf
from tests.web.conftest import add_person
from tests.web.seed import publish_harm


@pytest.fixture
def token(engine: Engine) -> str:
    publish_harm(engine)
    return add_person(engine, "rev-1", "reviewer")


def sign_in(client: TestClient, token: str) -> str:
    """Sign in; returns the session cookie's value."""
    response = client.post("/ui/signin", data={"token": token,
                                               "csrf_token": signin_csrf(client)},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return client.cookies["hilt_token"]


def _with_cookie(client: TestClient, value: str) -> TestClient:
    other = TestClient(client.app, base_url=BASE)
    other.cookies.set("hilt_token", value)
    return other


def _token_id(engine: Engine, token: str) -> str:
    with transaction(engine) as s:
        return s.execute(sa.select(TokenRow.id).where(
            TokenRow.token_hash == sha256_hex(token))).scalar_one()


def test_the_cookie_is_a_session_id_stored_only_as_a_hash(
        client: TestClient, engine: Engine, token: str) -> None:
    cookie = sign_in(client, token)
    assert cookie != token and token not in cookie
    with transaction(engine) as s:
        row = s.execute(sa.select(WebSessionRow)).scalar_one()
    assert row.id_hash == sha256_hex(cookie) and row.token_id == _token_id(engine, token)
    assert timedelta(hours=11) < row.expires_at - row.created_at <= timedelta(hours=12)
    assert client.get("/ui/review").status_code == 200


def test_signing_in_again_replaces_the_browsers_session(client: TestClient,
                                                        engine: Engine, token: str) -> None:
    first = sign_in(client, token)
    second = sign_in(client, token)
    assert first != second
    assert _with_cookie(client, first).get("/v1/reviews/mine").status_code == 401
    assert _with_cookie(client, second).get("/v1/reviews/mine").status_code == 200
    with transaction(engine) as s:
        assert s.execute(sa.select(WebSessionRow.id_hash)).scalars().all() == [
            sha256_hex(second)]


def test_a_copied_cookie_fails_after_sign_out(client: TestClient, engine: Engine,
                                              token: str) -> None:
    cookie = sign_in(client, token)
    copy = _with_cookie(client, cookie)
    assert copy.get("/ui/review").status_code == 200  # the copy works while signed in
    out = client.post("/ui/signout", data={"csrf_token": csrf_token_for(cookie)},
                      follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"].startswith("/ui/signin")
    with transaction(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(WebSessionRow)
                         ).scalar_one() == 0
    page = copy.get("/ui/review", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/signin")
    claim = copy.post("/ui/review/next", data={"csrf_token": csrf_token_for(cookie)},
                      follow_redirects=False)
    assert claim.status_code == 401
    api = copy.post("/v1/queue/next", headers={"X-CSRF-Token": csrf_token_for(cookie)})
    assert api.status_code == 401


def test_a_raw_api_token_in_the_cookie_is_refused(client: TestClient, token: str) -> None:
    forged = _with_cookie(client, token)
    assert forged.get("/ui/review", follow_redirects=False).status_code == 303
    assert forged.get("/v1/reviews/mine").status_code == 401
    # ... even right after the token authenticated a Bearer request
    bearer = {"Authorization": f"Bearer {token}"}
    assert TestClient(client.app, base_url=BASE).get("/v1/reviews/mine",
                                                     headers=bearer).status_code == 200
    assert forged.get("/v1/reviews/mine").status_code == 401
    # and a session id is no token for the Authorization header
    cookie = sign_in(client, token)
    assert client.get("/v1/reviews/mine").status_code == 200
    sid_bearer = {"Authorization": f"Bearer {cookie}"}
    assert TestClient(client.app, base_url=BASE).get(
        "/v1/reviews/mine", headers=sid_bearer).status_code == 401


def test_an_expired_session_fails(client: TestClient, engine: Engine, token: str) -> None:
    with transaction(engine) as s:
        expired = start_session(s, _token_id(engine, token), lifetime=timedelta(seconds=-1))
    page = _with_cookie(client, expired).get("/ui/review", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/signin")
    # a live session that then runs out stops working on time: the few seconds a
    # looked-up session is remembered never reach past its expiry
    with transaction(engine) as s:
        short = start_session(s, _token_id(engine, token), lifetime=timedelta(seconds=2))
        ends = s.execute(sa.select(WebSessionRow.expires_at).where(
            WebSessionRow.id_hash == sha256_hex(short))).scalar_one()
    browser = _with_cookie(client, short)
    assert browser.get("/v1/reviews/mine").status_code == 200
    time.sleep(max(0.0, (ends - utcnow()).total_seconds()) + 0.1)
    assert browser.get("/v1/reviews/mine").status_code == 401
    # signing in again drops the expired rows
    sign_in(TestClient(client.app, base_url=BASE), token)
    with transaction(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(WebSessionRow)
                         ).scalar_one() == 1


def test_a_revoked_tokens_sessions_fail(client: TestClient, engine: Engine,
                                        token: str) -> None:
    cookie = sign_in(client, token)
    assert client.get("/ui/review").status_code == 200
    with transaction(engine) as s:
        revoke_token(s, _token_id(engine, token))
    page = _with_cookie(client, cookie).get("/ui/review", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/signin")


def test_a_deactivated_reviewers_sessions_end(client: TestClient, engine: Engine,
                                              token: str) -> None:
    cookie = sign_in(client, token)
    assert client.get("/ui/review").status_code == 200
    with transaction(engine) as s:
        assert set_reviewer_active(s, "rev-1", False)["sessions_ended"] == 1
    with transaction(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(WebSessionRow)
                         ).scalar_one() == 0
    page = _with_cookie(client, cookie).get("/ui/review", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/signin")


@pytest.mark.parametrize("target", ["/ui/review\r\nX-Injected: 1", "/ui/review\x00",
                                    "/ui/review\t", "/ui/re view", "/ui/révïew"])
def test_signin_ignores_a_next_path_with_control_or_non_ascii_characters(
        client: TestClient, token: str, target: str) -> None:
    csrf = signin_csrf(client)
    response = client.post("/ui/signin", data={"token": token, "csrf_token": csrf,
                                               "next": target}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/review"
    assert "x-injected" not in response.headers


def test_signin_follows_a_plain_next_path(client: TestClient, token: str) -> None:
    response = client.post("/ui/signin", data={
        "token": token, "csrf_token": signin_csrf(client), "next": "/ui/review?x=%0A"},
        follow_redirects=False)
    assert response.headers["location"] == "/ui/review?x=%0A"


@pytest.mark.parametrize(("error", "status", "text"), [
    (OverflowError("int too large"), 422, "out of the range"),
    (DataError("INSERT", {}, Exception("numeric field overflow")), 422, "out of the range"),
    (RuntimeError("boom"), 500, "went wrong"),
])
def test_pages_answer_every_error_in_html_and_the_api_in_json(
        engine: Engine, token: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, error: Exception, status: int, text: str) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise error

    with TestClient(create_app(engine), base_url=BASE,
                    raise_server_exceptions=False) as client:
        sign_in(client, token)
        monkeypatch.setattr(views, "history_rows", broken)  # under the page and the API
        page = client.get("/ui/review")
        assert page.status_code == status
        assert page.headers["content-type"].startswith("text/html")
        assert text in page.text and "<html" in page.text
        assert "boom" not in page.text  # no internals on the page
        logged = [r for r in caplog.records if r.name == "hilt.web.pages"]
        assert (status == 500) == bool(logged)
        assert page.headers["x-frame-options"] == "DENY"
        assert "default-src 'self'" in page.headers["content-security-policy"]
        api = client.get("/v1/reviews/mine", headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == status
        if status == 422:
            assert api.json() == {"detail": "a value is out of the range the database "
                                            "can store"}
        else:
            assert api.headers["content-type"].startswith("text/plain")
            assert api.text == "Internal Server Error"
