"""API tokens that expire: ``hilt token create --expires-in``, refusal everywhere past the
expiry (HTTP API, sign-in, live page sessions, the in-process cache), the throttled
``last_used_at`` and what ``hilt token list`` shows."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

import hilt.access
import hilt.access_tokens
from hilt.access import (
    Principal,
    TokenExpired,
    add_reviewer,
    authenticate,
    create_token,
    list_tokens,
    recent_principal,
    recent_session,
    record_use,
    remember_principal,
    revoke_token,
    session_principal,
    start_session,
    token_lifetime,
)
from hilt.canonical import sha256_hex
from hilt.errors import InputError
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import TokenRow, WebSessionRow
from tests.conftest import migrated_sqlite
from tests.core.conftest import Clock
from tests.ops.climain import run_main


def _token(engine: Engine, expires_in: timedelta | None, *, role: str = "service",
           reviewer: str | None = None) -> tuple[str, str]:
    with transaction(engine) as s:
        if reviewer is not None:
            add_reviewer(s, reviewer_id=reviewer, role=role)
        return create_token(s, role=role, reviewer_id=reviewer, expires_in=expires_in)


def _row(engine: Engine, token_id: str) -> TokenRow:
    with transaction(engine) as s:
        return s.get_one(TokenRow, token_id)


# --- the lifetime option ----------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("45s", 45), ("90m", 5400), ("12h", 43200), ("30d", 30 * 86400), ("2W", 14 * 86400),
    (" 366d ", 366 * 86400)])
def test_a_lifetime_is_a_whole_number_and_a_unit(text: str, seconds: int) -> None:
    assert token_lifetime(text) == timedelta(seconds=seconds)


def test_never_is_no_lifetime() -> None:
    assert token_lifetime("never") is None and token_lifetime("Never") is None


@pytest.mark.parametrize("text, says", [
    ("0h", "must be more than zero"), ("000d", "must be more than zero"),
    ("-1d", "must be more than zero"), ("-0s", "must be more than zero"),
    ("abc", "is not a lifetime"), ("", "is not a lifetime"), ("12", "is not a lifetime"),
    ("1.5h", "is not a lifetime"), ("12 h", "is not a lifetime"),
    ("1y", "is not a lifetime"), ("367d", "longer than a token may live (at most 366d)"),
    ("53w", "longer than a token may live"),
    ("99999999999999999999w", "longer than a token may live"),
    ("9" * 5000 + "d", "longer than a token may live")])
def test_bad_lifetimes_are_refused_naming_the_option(text: str, says: str) -> None:
    with pytest.raises(InputError) as caught:
        token_lifetime(text, "--expires-in")
    assert caught.value.field == "--expires-in"
    assert says in caught.value.reason
    assert len(str(caught.value)) < 300  # a long value is not echoed whole


def test_create_token_refuses_lifetimes_out_of_bounds(engine: Engine) -> None:
    for bad in (timedelta(0), timedelta(seconds=-1), timedelta(days=367)):
        with pytest.raises(InputError) as caught, transaction(engine) as s:
            create_token(s, role="service", expires_in=bad)
        assert caught.value.field == "expires_in"
    with transaction(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(TokenRow)).scalar_one() == 0


def test_the_cli_refuses_a_bad_lifetime_in_one_line_and_creates_nothing(
        tmp_path: Path) -> None:
    url = migrated_sqlite(tmp_path / "hilt.db")
    for bad in ("0d", "-3h", "soon", "400d"):
        code, out = run_main("token", "create", "--role", "service", "--expires-in", bad,
                             "--db", url)
        assert code == 2, out
        assert len(out.strip().splitlines()) == 1, out
        assert out.startswith("error: field '--expires-in': "), out
    code, out = run_main("token", "list", "--db", url)
    assert code == 0 and out.strip() == "[]", out


def test_the_cli_prints_when_a_token_expires_and_the_audit_log_records_it(
        tmp_path: Path) -> None:
    import json

    url = migrated_sqlite(tmp_path / "hilt.db")
    before = utcnow()
    code, out = run_main("token", "create", "--role", "service", "--expires-in", "12h",
                         "--db", url)
    assert code == 0, out
    made = json.loads(out)
    expires = datetime.fromisoformat(made["expires_at"])
    assert before + timedelta(hours=12) <= expires <= utcnow() + timedelta(hours=12)
    code, out = run_main("token", "create", "--role", "service", "--db", url)
    assert code == 0 and json.loads(out)["expires_at"] == "never", out
    code, out = run_main("audit", "show", "--action", "token.create", "--db", url)
    assert code == 0, out
    payloads = {e["entity"]: e["payload"] for e in json.loads(out)}
    assert payloads[f"api_token:{made['id']}"]["expires_at"] == expires.isoformat()
    assert [p["expires_at"] for k, p in payloads.items() if made["id"] not in k] == [None]


def test_the_audit_entry_of_a_token_names_its_expiry(engine: Engine) -> None:
    token_id, _ = _token(engine, timedelta(days=30))
    with transaction(engine) as s:
        entry = audit.entries(s, entity_id=token_id, action="token.create", limit=1)[0]
        row = s.get_one(TokenRow, token_id)
    assert row.expires_at is not None
    assert entry.payload["expires_at"] == row.expires_at.isoformat()
    assert timedelta(days=30) - (row.expires_at - row.created_at) < timedelta(seconds=1)


# --- refused once expired --------------------------------------------------------------

def test_an_expired_token_authenticates_nowhere(engine: Engine, clock: Clock) -> None:
    token_id, secret = _token(engine, timedelta(hours=1))
    with transaction(engine) as s:
        assert authenticate(s, secret) is not None
    clock(3600)
    with transaction(engine) as s, pytest.raises(TokenExpired) as caught:
        authenticate(s, secret)
    assert caught.value.token_id == token_id
    assert secret not in str(caught.value)


def test_a_token_without_expiry_still_works_much_later(engine: Engine, clock: Clock) -> None:
    _, secret = _token(engine, None)
    clock(10 * 365 * 86400)
    with transaction(engine) as s:
        assert authenticate(s, secret) is not None


def test_a_page_session_never_outlives_its_token(engine: Engine, clock: Clock) -> None:
    token_id, _ = _token(engine, timedelta(hours=2))
    with transaction(engine) as s:
        session_id = start_session(s, token_id)  # 12 h asked, 2 h given
        ends = s.get_one(WebSessionRow, sha256_hex(session_id)).expires_at
        assert ends == s.get_one(TokenRow, token_id).expires_at


def test_a_live_session_ends_when_its_token_expires(engine: Engine, clock: Clock,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_AUTH_CACHE_S", "0")
    token_id, _ = _token(engine, None)
    with transaction(engine) as s:
        session_id = start_session(s, token_id)
        # the token's expiry set after the session began (as for a session that began
        # before its token was given one): the token's expiry still ends it
        s.get_one(TokenRow, token_id).expires_at = utcnow() + timedelta(minutes=30)
    with transaction(engine) as s:
        assert session_principal(s, session_id) is not None
    clock(30 * 60)
    with transaction(engine) as s:
        assert session_principal(s, session_id) is None


# --- the in-process cache ----------------------------------------------------------------

def test_the_cache_forgets_a_token_when_it_expires(engine: Engine, clock: Clock,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_AUTH_CACHE_S", "60")
    _, secret = _token(engine, timedelta(seconds=2))
    _, lasting = _token(engine, None)
    for each in (secret, lasting):
        with transaction(engine) as s:
            principal = authenticate(s, each)
        assert principal is not None
        remember_principal(each, principal)
    assert recent_principal(secret) is not None
    clock(2.01)
    assert recent_principal(secret) is None
    assert recent_principal(lasting) is not None  # HILT_AUTH_CACHE_S still rules it


def test_an_already_expired_principal_is_not_remembered(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setenv("HILT_AUTH_CACHE_S", "60")
    secret = "hilt_never-looked-up"
    remember_principal(secret, Principal("tk_x", "service", None, "x",
                                         utcnow() - timedelta(seconds=1)))
    assert recent_principal(secret) is None


def test_the_cache_forgets_a_session_when_its_token_expires(
        engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_AUTH_CACHE_S", "60")
    token_id, _ = _token(engine, None)
    with transaction(engine) as s:
        session_id = start_session(s, token_id)  # a 12 h session
        s.get_one(TokenRow, token_id).expires_at = utcnow() + timedelta(seconds=2)
    with transaction(engine) as s:
        assert session_principal(s, session_id) is not None
    assert recent_session(session_id) is not None
    clock(2.01)
    assert recent_session(session_id) is None


# --- last use -----------------------------------------------------------------------------

def test_last_use_is_written_at_most_once_a_minute(engine: Engine, clock: Clock) -> None:
    token_id, secret = _token(engine, None)
    with transaction(engine) as s:
        principal = authenticate(s, secret)
    assert principal is not None and _row(engine, token_id).last_used_at is None
    assert record_use(engine, principal) is True
    first = _row(engine, token_id).last_used_at
    assert first is not None and abs(first - hilt.access.utcnow()) < timedelta(seconds=5)
    clock(30)
    assert record_use(engine, principal) is False
    assert _row(engine, token_id).last_used_at == first
    # another process (its own throttle empty) finds the stored value recent
    hilt.access_tokens._USE_WRITTEN.clear()
    assert record_use(engine, principal) is False
    clock(60)  # a minute after this process's last try
    assert record_use(engine, principal) is True
    assert _row(engine, token_id).last_used_at - first >= timedelta(seconds=60)


@pytest.fixture
def writer_held(engine: Engine) -> Iterator[Callable[[str], None]]:
    """Holds the lock a last-use write needs (SQLite: the database's write lock;
    PostgreSQL: the token's row) until the test ends."""
    conn = engine.connect()

    def hold(token_id: str) -> None:
        conn.begin()
        conn.execute(sa.update(TokenRow).where(TokenRow.id == token_id)
                     .values(name="held"))

    try:
        yield hold
    finally:
        conn.rollback()
        conn.close()


def test_a_last_use_write_that_loses_a_race_is_skipped_quickly(
        engine: Engine, writer_held: Callable[[str], None]) -> None:
    token_id, secret = _token(engine, None)
    with transaction(engine) as s:
        principal = authenticate(s, secret)
    assert principal is not None
    writer_held(token_id)
    started = time.monotonic()
    assert record_use(engine, principal) is False
    assert time.monotonic() - started < 5  # not SQLite's 60 s busy timeout
    if engine.dialect.name == "sqlite":  # the pooled connection waits as long as before
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == 60000


# --- token list ---------------------------------------------------------------------------

def test_the_list_tells_active_expired_and_revoked_tokens_apart(engine: Engine,
                                                                clock: Clock) -> None:
    short, _ = _token(engine, timedelta(hours=1))
    lasting, secret = _token(engine, None)
    revoked, _ = _token(engine, timedelta(days=1))
    with transaction(engine) as s:
        revoke_token(s, revoked)
        principal = authenticate(s, secret)
    assert principal is not None
    record_use(engine, principal)
    with transaction(engine) as s:
        listed = {t["id"]: t for t in list_tokens(s)}
    assert {k: v["status"] for k, v in listed.items()} == {
        short: "active", lasting: "active", revoked: "revoked"}
    assert listed[lasting]["expires_at"] == "never"
    assert listed[lasting]["last_used_at"] == _row(engine, lasting).last_used_at.isoformat()
    assert listed[short]["last_used_at"] is None
    assert listed[short]["expires_at"] == _row(engine, short).expires_at.isoformat()
    clock(3600)
    with transaction(engine) as s:
        listed = {t["id"]: t for t in list_tokens(s)}
    assert {k: v["status"] for k, v in listed.items()} == {
        short: "expired", lasting: "active", revoked: "revoked"}


def test_token_list_on_the_command_line(tmp_path: Path) -> None:
    import json

    url = migrated_sqlite(tmp_path / "hilt.db")
    assert run_main("token", "create", "--role", "service", "--expires-in", "2w",
                    "--db", url)[0] == 0
    code, out = run_main("token", "list", "--db", url)
    assert code == 0, out
    [token] = json.loads(out)
    assert token["status"] == "active" and token["last_used_at"] is None
    assert set(token) >= {"id", "role", "name", "reviewer_id", "status", "created_at",
                          "expires_at", "last_used_at", "revoked"}
    assert datetime.fromisoformat(token["expires_at"]) - datetime.fromisoformat(
        token["created_at"]) == timedelta(weeks=2)


# --- sign-in ------------------------------------------------------------------------------

@pytest.fixture
def pages(engine: Engine) -> Iterator[TestClient]:
    from hilt.api.app import create_app
    from tests.web.asgi import BASE

    with TestClient(create_app(engine), base_url=BASE) as client:
        yield client


def _sign_in(client: TestClient, secret: str) -> object:
    from tests.web.asgi import signin_csrf

    return client.post("/ui/signin", data={"token": secret,
                                           "csrf_token": signin_csrf(client)},
                       follow_redirects=False)


def test_sign_in_with_an_expired_token_is_refused_saying_so(
        engine: Engine, pages: TestClient, clock: Clock) -> None:
    _, secret = _token(engine, timedelta(hours=1), role="reviewer", reviewer="ana")
    clock(3601)
    response = _sign_in(pages, secret)
    assert response.status_code == 401  # type: ignore[attr-defined]
    text = response.text  # type: ignore[attr-defined]
    assert "That token expired on " in text and "ask for a new one" in text
    assert secret not in text
    assert "hilt_token" not in pages.cookies
    with transaction(engine) as s:
        assert s.execute(sa.select(WebSessionRow)).first() is None


def test_a_signed_in_page_session_ends_when_the_token_expires(
        engine: Engine, pages: TestClient, clock: Clock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_AUTH_CACHE_S", "60")
    token_id, secret = _token(engine, timedelta(hours=1), role="reviewer", reviewer="ana")
    response = _sign_in(pages, secret)
    assert response.status_code == 303, response.text  # type: ignore[attr-defined]
    cookie = response.headers["set-cookie"]  # type: ignore[attr-defined]
    max_age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))  # type: ignore[union-attr]
    assert 3000 < max_age <= 3600, cookie  # the token's hour, not the session's 12 h
    assert pages.get("/v1/reviews/mine").status_code == 200
    assert _row(engine, token_id).last_used_at is not None  # signing in is a use
    clock(3600)
    assert pages.get("/v1/reviews/mine").status_code == 401
