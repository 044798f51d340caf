"""A token's expiry changed after it was made: ``hilt token expire ID --expires-in`` and
:func:`hilt.access.set_token_expiry` (counted from now; revoked and unknown tokens
refused; an expired token may be given a new lifetime), its audit entry, and the
in-process cache of recent principals, which a new expiry or a revocation empties once
more when it commits."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

import hilt.access
import hilt.access_tokens
from hilt.access import (
    TokenExpired,
    add_reviewer,
    authenticate,
    create_token,
    recent_principal,
    remember_principal,
    revoke_token,
    set_reviewer_active,
    set_token_expiry,
)
from hilt.errors import Conflict, InputError, NotFound
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import TokenRow
from tests.core.conftest import Clock
from tests.ops.climain import run_main


def _token(engine: Engine, expires_in: timedelta | None) -> tuple[str, str]:
    with transaction(engine) as s:
        return create_token(s, role="service", name="importer", expires_in=expires_in)


def _expires_at(engine: Engine, token_id: str) -> datetime | None:
    with transaction(engine) as s:
        return s.get_one(TokenRow, token_id).expires_at


def _expiry_entries(engine: Engine, token_id: str) -> list[audit.AuditEntry]:
    with transaction(engine) as s:
        return audit.entries(s, entity_id=token_id, action="token.expire", limit=10)


def test_a_new_expiry_counts_from_now_and_is_audited(engine: Engine) -> None:
    token_id, _ = _token(engine, timedelta(hours=1))
    before = utcnow()
    with transaction(engine) as s:
        result = set_token_expiry(s, token_id, timedelta(days=30), actor="root")
    expires = _expires_at(engine, token_id)
    assert expires is not None
    assert before + timedelta(days=30) <= expires <= utcnow() + timedelta(days=30)
    assert result["expires_at"] == expires.isoformat() and result["status"] == "active"
    assert result["was_expired"] is False
    [entry] = _expiry_entries(engine, token_id)
    assert entry.actor == "root"
    assert entry.payload["expires_at"] == expires.isoformat()
    assert entry.payload["previous_expires_at"] == result["previous_expires_at"]
    assert datetime.fromisoformat(result["previous_expires_at"]) > before
    with transaction(engine) as s:
        result = set_token_expiry(s, token_id, None)
    assert _expires_at(engine, token_id) is None and result["expires_at"] == "never"
    assert result["previous_expires_at"] == expires.isoformat()


def test_an_expired_token_may_be_given_a_new_lifetime(engine: Engine, clock: Clock) -> None:
    token_id, secret = _token(engine, timedelta(minutes=5))
    clock(600)
    with transaction(engine) as s, pytest.raises(TokenExpired):
        authenticate(s, secret)
    with transaction(engine) as s:
        result = set_token_expiry(s, token_id, timedelta(hours=1))
    assert result["was_expired"] is True and result["status"] == "active"
    assert hilt.access.expiry_message(result).startswith(f"{token_id} had expired at ")
    with transaction(engine) as s:
        principal = authenticate(s, secret)
    assert principal is not None and principal.token_id == token_id


def test_a_revoked_or_unknown_token_gets_no_new_expiry(engine: Engine) -> None:
    token_id, _ = _token(engine, timedelta(hours=1))
    with transaction(engine) as s:
        revoke_token(s, token_id)
    expires = _expires_at(engine, token_id)
    with pytest.raises(Conflict, match="revoked token cannot be given a new expiry"), \
            transaction(engine) as s:
        set_token_expiry(s, token_id, timedelta(days=1))
    for unknown in ("tk_0000000000000000", "x" * 500, "tk_\x00"):
        with pytest.raises(NotFound, match="does not exist"), transaction(engine) as s:
            set_token_expiry(s, unknown, timedelta(days=1))
    assert _expires_at(engine, token_id) == expires
    assert _expiry_entries(engine, token_id) == []


def test_a_lifetime_out_of_bounds_is_refused(engine: Engine) -> None:
    token_id, _ = _token(engine, None)
    for bad in (timedelta(0), timedelta(days=367)):
        with pytest.raises(InputError) as caught, transaction(engine) as s:
            set_token_expiry(s, token_id, bad)
        assert caught.value.field == "expires_in"
    assert _expires_at(engine, token_id) is None


def test_a_shorter_expiry_is_seen_at_once_despite_the_cache(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_AUTH_CACHE_S", "60")
    token_id, secret = _token(engine, None)
    with transaction(engine) as s:
        principal = authenticate(s, secret)
    assert principal is not None
    remember_principal(secret, principal)
    with transaction(engine) as s:
        set_token_expiry(s, token_id, timedelta(seconds=1))
    assert recent_principal(secret) is None  # looked up again, with its new expiry


@pytest.mark.parametrize("change", ["revoke", "expire", "deactivate"])
def test_a_principal_remembered_before_the_commit_is_forgotten_after_it(
        engine: Engine, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    """A request that authenticates while the change is not yet committed reads the
    token as it was; what it remembers must not outlive the commit."""
    monkeypatch.setenv("HILT_AUTH_CACHE_S", "60")
    token_id, secret = _token(engine, None)
    with transaction(engine) as s:
        if change == "deactivate":
            add_reviewer(s, reviewer_id="r1")
            token_id, secret = create_token(s, role="reviewer", reviewer_id="r1")
    with transaction(engine) as s:
        principal = authenticate(s, secret)
    assert principal is not None
    with transaction(engine) as s:
        if change == "deactivate":
            set_reviewer_active(s, "r1", False)
        elif change == "revoke":
            revoke_token(s, token_id)
        else:
            set_token_expiry(s, token_id, timedelta(seconds=1))
        remember_principal(secret, principal)  # a concurrent request, before the commit
    assert recent_principal(secret) is None


# --- the command line ---------------------------------------------------------------------

def test_token_expire_on_the_command_line(db_url: str) -> None:
    import json

    code, out = run_main("token", "create", "--role", "service", "--expires-in", "1h",
                         "--db", db_url)
    assert code == 0, out
    token_id = json.loads(out)["id"]
    code, out = run_main("token", "expire", token_id, "--expires-in", "30d", "--db", db_url)
    assert code == 0, out
    assert out.startswith(f"{token_id} now expires at ") and "(before: " in out, out
    code, out = run_main("token", "expire", token_id, "--expires-in", "never", "--db", db_url)
    assert code == 0 and out.startswith(f"{token_id} now never expires"), out
    code, out = run_main("token", "list", "--db", db_url)
    assert json.loads(out)[0]["expires_at"] == "never"
    code, out = run_main("audit", "show", "--action", "token.expire", "--db", db_url)
    assert code == 0 and len(json.loads(out)) == 2, out


def test_token_expire_refuses_bad_input_in_one_line_and_changes_nothing(db_url: str) -> None:
    import json

    code, out = run_main("token", "create", "--role", "service", "--expires-in", "1h",
                         "--db", db_url)
    made = json.loads(out)
    token_id = made["id"]
    refusals = {
        ("400d",): "error: field '--expires-in': '400d' is longer than a token may live",
        ("0d",): "error: field '--expires-in': '0d': a token's lifetime must be more than",
        ("soon",): "error: field '--expires-in': 'soon' is not a lifetime",
    }
    for (bad,), says in refusals.items():
        code, out = run_main("token", "expire", token_id, "--expires-in", bad, "--db", db_url)
        assert code == 2 and out.startswith(says), out
        assert len(out.strip().splitlines()) == 1, out
    code, out = run_main("token", "expire", "tk_nope", "--expires-in", "1d", "--db", db_url)
    assert (code, out) == (2, "error: token 'tk_nope' does not exist\n")
    assert run_main("token", "revoke", token_id, "--db", db_url)[0] == 0
    code, out = run_main("token", "expire", token_id, "--expires-in", "1d", "--db", db_url)
    assert code == 2 and out.startswith(f"error: token '{token_id}' was revoked at "), out
    assert len(out.strip().splitlines()) == 1, out
    code, out = run_main("audit", "show", "--action", "token.expire", "--db", db_url)
    assert code == 0 and json.loads(out) == [], out
    [listed] = json.loads(run_main("token", "list", "--db", db_url)[1])
    assert listed["expires_at"] == made["expires_at"]


def test_token_create_refuses_a_name_or_reviewer_no_token_could_carry(db_url: str) -> None:
    for option, value, says in (
            ("--name", "x" * 201, "error: field '--name': "),
            ("--name", "two\nlines", "error: field '--name': must not contain control"),
            ("--reviewer", "a/b", "error: field '--reviewer': ")):
        code, out = run_main("token", "create", "--role", "lead", option, value,
                             "--db", db_url)
        assert code == 2 and out.startswith(says), out
        assert len(out.strip().splitlines()) == 1, out
    assert run_main("token", "list", "--db", db_url) == (0, "[]\n")
