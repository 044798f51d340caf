"""Every endpoint but /healthz needs a valid token; a wrong role gets 403."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.access import ROLES, revoke_token
from hilt.api.app import route_roles, routes_without_roles
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import TokenRow
from tests.api.conftest import Api


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_healthz_is_public(api: Api) -> None:
    assert api.client.get("/healthz").json()["status"] == "ok"


def test_every_route_declares_roles(api: Api) -> None:
    assert routes_without_roles(api.client.app) == []  # type: ignore[arg-type]


def _refused(api: Api, method: str, path: str, headers: dict[str, str]) -> bool:
    """API routes answer 401; pages send a GET to the sign-in page and refuse a POST."""
    form = {"csrf": "x"} if path.startswith("/ui") and method == "POST" else None
    resp = api.client.request(method, _concrete(path), headers=headers, data=form,
                              follow_redirects=False)
    if path.startswith("/ui"):
        if method == "GET":
            return resp.status_code == 303 and "/ui/signin" in resp.headers["location"]
        return resp.status_code in (401, 403)
    return resp.status_code == 401


def test_every_route_refuses_missing_and_bad_tokens(api: Api) -> None:
    roles = route_roles(api.client.app)  # type: ignore[arg-type]
    assert roles, "no routes found"
    paths = {(m, p) for m, p in roles} | {("GET", "/openapi.json"), ("GET", "/docs")}
    bad = {"Authorization": "Bearer hilt_not-a-real-token"}
    for method, path in sorted(paths):
        assert _refused(api, method, path, {}), (method, path)
        assert _refused(api, method, path, bad), (method, path)


def test_every_route_gives_403_to_roles_it_does_not_admit(api: Api) -> None:
    checked = 0
    for (method, path), admitted in route_roles(api.client.app).items():  # type: ignore[arg-type]
        for role in set(ROLES) - admitted:
            form = {"csrf": "x"} if path.startswith("/ui") and method == "POST" else None
            resp = api.client.request(method, _concrete(path), headers=api.headers(role),
                                      data=form, follow_redirects=False)
            assert resp.status_code == 403, (method, path, role, resp.text)
            checked += 1
    assert checked > 0


def test_openapi_schema_needs_a_token_and_lists_routes(api: Api) -> None:
    schema = api.client.get("/openapi.json", headers=api.headers("reviewer")).json()
    assert "/v1/events" in schema["paths"]


def test_revoked_token_is_refused(api: Api, engine: Engine) -> None:
    h = api.headers("service")
    assert api.client.get("/v1/events", headers=h).status_code == 200
    with transaction(engine) as s:
        from hilt.access import list_tokens

        tid = next(t["id"] for t in list_tokens(s) if t["role"] == "service")
        revoke_token(s, tid)
    assert api.client.get("/v1/events", headers=h).status_code == 401


def test_a_revocation_by_another_process_takes_effect_within_the_cache_time(
        api: Api, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import hilt.access

    monkeypatch.setenv("HILT_AUTH_CACHE_S", "5")
    clock = [1000.0]
    monkeypatch.setattr(hilt.access.time, "monotonic", lambda: clock[0])
    h = api.headers("lead")
    assert api.client.get("/v1/events", headers=h).status_code == 200
    # Another process revokes: this one's cache is not told.
    with engine.begin() as conn:
        conn.execute(sa.update(TokenRow).where(TokenRow.role == "lead")
                     .values(revoked_at=utcnow()))
    clock[0] += 4.9
    assert api.client.get("/v1/events", headers=h).status_code == 200
    clock[0] += 0.2
    assert api.client.get("/v1/events", headers=h).status_code == 401


def test_every_request_transaction_commits_before_the_response(api: Api) -> None:
    """With FastAPI's default scope a yield dependency ends after the response is sent,
    so a client could see a 200 for a change its next request cannot read yet."""
    from hilt.api.app import api_routes
    from hilt.api.deps import get_session

    found = 0
    stack = [d for r in api_routes(api.client.app) for d in r.dependant.dependencies]  # type: ignore[arg-type]
    while stack:
        dep = stack.pop()
        if dep.call is get_session:
            found += 1
            assert dep.scope == "function"
        stack.extend(dep.dependencies)
    assert found > 0


def _expiring(engine: Engine, lifetime: timedelta) -> tuple[str, str]:
    from hilt.access import create_token

    with transaction(engine) as s:
        return create_token(s, role="service", name="scraper", expires_in=lifetime)


def test_an_expired_token_gets_401_saying_it_expired(
        api: Api, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import hilt.access

    monkeypatch.setenv("HILT_AUTH_CACHE_S", "60")
    clock = [1000.0]
    monkeypatch.setattr(hilt.access.time, "monotonic", lambda: clock[0])
    _, secret = _expiring(engine, timedelta(hours=1))
    h = {"Authorization": f"Bearer {secret}"}
    assert api.client.get("/v1/events", headers=h).status_code == 200
    later = utcnow() + timedelta(hours=1)
    monkeypatch.setattr(hilt.access, "utcnow", lambda: later)
    clock[0] += 3600  # the remembered token lapses with it, whatever HILT_AUTH_CACHE_S
    resp = api.client.get("/v1/events", headers=h)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    detail = resp.json()["detail"]
    assert detail.startswith("the API token expired at ") and "ask for a new one" in detail
    assert secret not in resp.text
    # an unknown token is still told only that it is invalid
    other = api.client.get("/v1/events", headers={"Authorization": "Bearer hilt_unknown"})
    assert other.json()["detail"] == "invalid or revoked API token"


def test_requests_write_a_tokens_last_use_at_most_once_a_minute(
        api: Api, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import hilt.access
    import hilt.access_tokens

    monkeypatch.setenv("HILT_AUTH_CACHE_S", "0")  # every request looks the token up
    token_id, secret = _expiring(engine, timedelta(days=1))
    writes: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_TOKENS"):
            writes.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        h = {"Authorization": f"Bearer {secret}"}
        for _ in range(20):
            assert api.client.get("/v1/events", headers=h).status_code == 200
        assert len(writes) == 1
        later = utcnow() + timedelta(minutes=1, seconds=1)
        monkeypatch.setattr(hilt.access_tokens, "utcnow", lambda: later)  # record_use's
        monkeypatch.setattr(hilt.access.time, "monotonic", lambda: time.monotonic_ns() / 1e9
                            + 61)
        assert api.client.get("/v1/events", headers=h).status_code == 200
        assert len(writes) == 2
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    with transaction(engine) as s:
        assert s.get_one(TokenRow, token_id).last_used_at == later
