"""API tokens over their life: a lifetime read from text, creation, revocation, a new
expiry, the list of every token with its status, and the record of each one's last use.

A token is a random secret shown once and stored only as its sha256 (see
:mod:`hilt.access`, which also authenticates them). Each change here is audited
(``token.create``, ``token.revoke``, ``token.expire``) in the transaction that makes it.

:mod:`hilt.access` re-exports the public names here and imports this module as it loads,
so what this module needs of it (the role check, the in-process cache of recently
authenticated tokens) is imported when a function runs.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.canonical import sha256_hex
from hilt.errors import Conflict, InputError, NotFound
from hilt.store import audit
from hilt.store.keyset import keyset
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import ReviewerRow, TokenRow

if TYPE_CHECKING:
    from hilt.access import Principal

TOKEN_PREFIX = "hilt_"
# The longest lifetime a token may be given: longer ones are most likely a typo (3000d
# for 30d); a token meant to outlive it is made without expiry and rotated by hand.
TOKEN_MAX_LIFETIME = timedelta(days=366)
# What ``api_tokens.name`` holds.
TOKEN_NAME_MAX = 200
# How often a token's last_used_at is written at most (per token and process; another
# process skips the write when the stored value is this recent).
LAST_USED_INTERVAL = timedelta(minutes=1)

log = logging.getLogger(__name__)

_LIFETIME = re.compile(r"(\d+)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def token_lifetime(text: str, field: str = "expires_in") -> timedelta | None:
    """A token lifetime as ``hilt token create --expires-in`` takes it: a whole number
    and a unit (``45s``, ``90m``, ``12h``, ``30d``, ``2w``), or ``never`` (None). Zero,
    negative and unreadable values are refused, and so are values over
    :data:`TOKEN_MAX_LIFETIME`, each with an ``InputError`` naming ``field``."""
    value = text.strip().lower()
    if value == "never":
        return None
    match = _LIFETIME.fullmatch(value)
    text = text if len(text) <= 40 else text[:37] + "..."  # as echoed in the messages
    if match is None:
        if value.startswith("-"):
            raise InputError(f"{text!r}: a token's lifetime must be more than zero",
                             field=field)
        raise InputError(f"{text!r} is not a lifetime: a whole number and a unit (s, m, "
                         "h, d, w) such as 12h, 30d or 2w, or 'never'", field=field)
    # counted in whole seconds before any timedelta is made (99999999999999w would
    # overflow one); a number of more digits than any allowed lifetime is too long as is
    seconds = int(match[1]) * _UNIT_S[match[2]] if len(match[1]) <= 12 else None
    if seconds == 0:
        raise InputError(f"{text!r}: a token's lifetime must be more than zero",
                         field=field)
    if seconds is None or seconds > TOKEN_MAX_LIFETIME.total_seconds():
        raise InputError(f"{text!r} is longer than a token may live (at most "
                         f"{TOKEN_MAX_LIFETIME.days}d); a token that must outlive that is "
                         "made with 'never' and rotated by hand", field=field)
    return check_token_lifetime(timedelta(seconds=seconds), field)


def check_token_lifetime(lifetime: timedelta, field: str = "expires_in") -> timedelta:
    """``lifetime`` if it is more than zero and at most :data:`TOKEN_MAX_LIFETIME`."""
    if lifetime <= timedelta(0):
        raise InputError(f"a token's lifetime must be more than zero, not {lifetime}",
                         field=field)
    if lifetime > TOKEN_MAX_LIFETIME:
        raise InputError(f"a token may live at most {TOKEN_MAX_LIFETIME.days}d, not "
                         f"{lifetime}", field=field)
    return lifetime


def create_token(session: Session, *, role: str, name: str = "",
                 reviewer_id: str | None = None, expires_in: timedelta | None = None,
                 actor: str = "cli") -> tuple[str, str]:
    """Create a token; returns ``(token_id, secret)``. The secret is not stored. With
    ``expires_in`` (see :func:`check_token_lifetime`) it stops authenticating that long
    from now; without, it never expires. A ``name`` (a label for people; the role when
    empty) is at most :data:`TOKEN_NAME_MAX` characters without control characters."""
    from hilt.access import check_role
    from hilt.review.text_checks import check_name, check_reviewer_id

    check_role(role)
    if name:
        check_name(name, "name", TOKEN_NAME_MAX)
    if expires_in is not None:
        check_token_lifetime(expires_in)
    if reviewer_id is not None:
        # an id no reviewer can have is told as such, before the database is asked
        check_reviewer_id(reviewer_id, "reviewer")
        reviewer = session.get(ReviewerRow, reviewer_id)
        if reviewer is None:
            raise NotFound(f"reviewer {reviewer_id!r} does not exist")
        if reviewer.role != role and role != "admin":
            raise InputError(f"reviewer {reviewer_id!r} has role {reviewer.role!r}, "
                             f"not {role!r}", field="role")
    elif role in {"reviewer", "adjudicator"}:
        raise InputError(f"a {role} token must belong to a reviewer identity",
                         field="reviewer")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = "tk_" + secrets.token_hex(8)
    now = utcnow()
    expires_at = now + expires_in if expires_in is not None else None
    session.add(TokenRow(id=token_id, token_hash=sha256_hex(secret), role=role,
                         name=name or role, reviewer_id=reviewer_id, created_at=now,
                         expires_at=expires_at))
    session.flush()
    audit.append(session, actor=actor, action="token.create", entity_type="api_token",
                 entity_id=token_id, payload={
                     "role": role, "reviewer_id": reviewer_id, "name": name or role,
                     "expires_at": _iso(expires_at)})
    return token_id, secret


def _token_for_update(session: Session, token_id: str) -> TokenRow:
    # An id longer than the column, or with control characters, names no token (and a
    # NUL would be refused by PostgreSQL itself).
    found = None
    if len(token_id) <= 64 and not any(ord(c) < 32 or ord(c) == 127 for c in token_id):
        found = session.get(TokenRow, token_id, with_for_update=True)
    if found is None:
        raise NotFound(f"token {token_id!r} does not exist")
    return found


def revoke_token(session: Session, token_id: str, *, actor: str = "cli") -> dict[str, Any]:
    """Revoke a token: this process refuses it at once, others within
    ``HILT_AUTH_CACHE_S``. A token already revoked is left as it is (its revocation time
    and the audit log unchanged). Returns its :func:`token_fields` and ``changed``."""
    from hilt.access import forget_recent

    row = _token_for_update(session, token_id)
    changed = row.revoked_at is None
    if changed:
        row.revoked_at = utcnow()
        forget_recent(session)
        audit.append(session, actor=actor, action="token.revoke",
                     entity_type="api_token", entity_id=token_id, payload={})
    return {**token_fields(row), "changed": changed}


def revocation_message(result: dict[str, Any]) -> str:
    """What ``hilt token revoke`` says of a :func:`revoke_token` result."""
    if result["changed"]:
        return f"revoked {result['id']}"
    return (f"{result['id']} was already revoked at {result['revoked_at']}; nothing "
            "changed")


def set_token_expiry(session: Session, token_id: str, expires_in: timedelta | None, *,
                     actor: str = "cli") -> dict[str, Any]:
    """Give a token a new expiry, ``expires_in`` from now (None: it never expires). A
    revoked token is refused (``Conflict``): a revocation is final. A token that has
    already expired may be given a new lifetime; ``was_expired`` says it was. Returns
    its :func:`token_fields`, ``previous_expires_at`` and ``was_expired``."""
    from hilt.access import forget_recent

    if expires_in is not None:
        check_token_lifetime(expires_in)
    row = _token_for_update(session, token_id)
    if row.revoked_at is not None:
        raise Conflict(f"token {token_id!r} was revoked at {row.revoked_at.isoformat()}; "
                       "a revoked token cannot be given a new expiry (create a new one)")
    now = utcnow()
    previous = row.expires_at
    was_expired = previous is not None and previous <= now
    row.expires_at = now + expires_in if expires_in is not None else None
    # A process remembers a token no longer than its expiry as it was read: a shorter
    # one must be seen at once.
    forget_recent(session)
    audit.append(session, actor=actor, action="token.expire", entity_type="api_token",
                 entity_id=token_id, payload={
                     "expires_at": _iso(row.expires_at),
                     "previous_expires_at": _iso(previous), "was_expired": was_expired})
    return {**token_fields(row, now), "previous_expires_at": _iso(previous) or "never",
            "was_expired": was_expired}


def expiry_message(result: dict[str, Any]) -> str:
    """What ``hilt token expire`` says of a :func:`set_token_expiry` result."""
    when = ("never expires" if result["expires_at"] == "never"
            else f"expires at {result['expires_at']}")
    if result["was_expired"]:
        return (f"{result['id']} had expired at {result['previous_expires_at']}; it works "
                f"again and now {when}")
    return f"{result['id']} now {when} (before: {result['previous_expires_at']})"


def token_status(row: TokenRow, now: datetime | None = None) -> str:
    """``revoked``, ``expired`` or ``active`` (a revocation is told over an expiry)."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def token_fields(row: TokenRow, now: datetime | None = None) -> dict[str, Any]:
    """A token as ``hilt token list`` shows it (never its secret or hash):
    ``expires_at`` is ``"never"`` for a token without expiry, ``last_used_at`` None for
    one not used yet, ``revoked_at`` None for one not revoked; ``status`` is
    :func:`token_status`."""
    return {"id": row.id, "role": row.role, "name": row.name,
            "reviewer_id": row.reviewer_id, "status": token_status(row, now or utcnow()),
            "created_at": row.created_at.isoformat(),
            "expires_at": _iso(row.expires_at) or "never",
            "last_used_at": _iso(row.last_used_at),
            "revoked": row.revoked_at is not None, "revoked_at": _iso(row.revoked_at)}


# Oldest first; tokens made in the same instant by id, so that pages never overlap.
TOKEN_ORDER = keyset((TokenRow.created_at, False), (TokenRow.id, False))


def token_rows(session: Session, *, limit: int | None = None,
               after: str | None = None) -> list[TokenRow]:
    """Tokens in :data:`TOKEN_ORDER`: all of them, or ``limit`` after the cursor
    ``after`` (``TOKEN_ORDER.cursor`` of the previous page's last token)."""
    q = sa.select(TokenRow)
    if after:
        q = q.where(TOKEN_ORDER.after(after))
    q = q.order_by(*TOKEN_ORDER.order_by())
    if limit is not None:
        q = q.limit(limit)
    return list(session.execute(q).scalars())


def list_tokens(session: Session) -> list[dict[str, Any]]:
    """Every token, oldest first, as :func:`token_fields`."""
    now = utcnow()
    return [token_fields(r, now) for r in token_rows(session)]


# --- last use ---------------------------------------------------------------------------

# Token id -> time.monotonic() of this process's last write of its last_used_at (at
# most _USE_WRITTEN_MAX tokens, then started afresh).
_USE_WRITTEN: dict[str, float] = {}
_USE_WRITTEN_MAX = 10_000
# How long the write may wait for a lock: a busy database skips it, not the request.
_USE_WRITE_WAIT_S = 0.25


def record_use(engine: Engine, principal: Principal) -> bool:
    """Note that ``principal``'s token authenticated: set its ``last_used_at`` unless
    this process wrote it within :data:`LAST_USED_INTERVAL`, or the stored value is
    that recent (another process wrote it). Never raises for a database error and waits
    at most a moment for the write lock: a write that loses a race is skipped (the next
    one, a minute on, catches up), since it must never fail or hold up a request. Call
    it outside any open transaction (SQLite has one writer). Returns whether it
    wrote."""
    interval = LAST_USED_INTERVAL.total_seconds()
    clock = time.monotonic()
    written = _USE_WRITTEN.get(principal.token_id)
    if written is not None and clock - written < interval:
        return False
    if len(_USE_WRITTEN) >= _USE_WRITTEN_MAX:
        _USE_WRITTEN.clear()
    _USE_WRITTEN[principal.token_id] = clock
    now = utcnow()
    wait_ms = int(_USE_WRITE_WAIT_S * 1000)
    try:
        with engine.connect() as conn:
            # On SQLite the wait is the driver connection's busy timeout, set outside any
            # transaction (BEGIN IMMEDIATE is what waits for the lock) and put back after.
            raw = conn.connection.dbapi_connection if conn.dialect.name == "sqlite" \
                else None
            if raw is not None:
                before = raw.execute("PRAGMA busy_timeout").fetchone()[0]
                raw.execute(f"PRAGMA busy_timeout={wait_ms}")
            try:
                with conn.begin():
                    if raw is None:
                        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{wait_ms}ms'")
                    done = conn.execute(sa.update(TokenRow).where(
                        TokenRow.id == principal.token_id,
                        sa.or_(TokenRow.last_used_at.is_(None),
                               TokenRow.last_used_at <= now - LAST_USED_INTERVAL))
                        .values(last_used_at=now))
            finally:
                if raw is not None:
                    raw.execute(f"PRAGMA busy_timeout={int(before)}")
    except sa.exc.SQLAlchemyError as exc:
        log.info("last use of token %s not recorded: %s", principal.token_id,
                 type(exc).__name__)
        return False
    return bool(getattr(done, "rowcount", 0))



def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None
