"""Who may do what: roles, reviewer identities and API tokens.

Tokens are random secrets shown once and stored only as sha256 hashes (they carry
~256 bits of entropy, so a slow password hash would add nothing). Each HTTP endpoint
declares the roles it admits through :func:`hilt.api.deps.allow`; ``admin`` is admitted
everywhere.

Signing in to the pages opens a *web session* for a token (:func:`start_session`): the
browser's cookie holds a random session id, never the token, and only its sha256 is
stored. A session ends at sign-out (:func:`end_session`), after
:data:`SESSION_LIFETIME`, or when its token is revoked, expires or its reviewer is
deactivated.

A token may be given a lifetime (``hilt token create --expires-in 30d``); past its
``expires_at`` it authenticates nowhere (:class:`TokenExpired`). Without one it never
expires. When a token last authenticated is kept in ``last_used_at``, written at most
about once a minute per token (:func:`record_use`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.canonical import sha256_hex
from hilt.config import env_float
from hilt.errors import Conflict, InputError, NotFound
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import ReviewerRow, TokenRow, WebSessionRow

ROLES = ("admin", "lead", "adjudicator", "reviewer", "service")
# Identities that may sign a release-gate decision off, each only under the sign-off
# roles it was granted (``ReviewerRow.signoff_roles``; hilt.gate.store.sign_off).
SIGNER_ROLES = ("lead", "admin")
TOKEN_PREFIX = "hilt_"
# How long a page session lasts after sign-in (a working day; sign in again after).
SESSION_LIFETIME = timedelta(hours=12)
# The longest lifetime a token may be given: longer ones are most likely a typo (3000d
# for 30d); a token meant to outlive it is made without expiry and rotated by hand.
TOKEN_MAX_LIFETIME = timedelta(days=366)
# How often a token's last_used_at is written at most (per token and process; another
# process skips the write when the stored value is this recent).
LAST_USED_INTERVAL = timedelta(minutes=1)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """The caller of an API request: a token's role and, for people, their reviewer id."""

    token_id: str
    role: str
    reviewer_id: str | None
    name: str
    # when the token stops authenticating (None: never); caches keep it no longer
    expires_at: datetime | None = dataclasses.field(default=None, compare=False)

    @property
    def actor(self) -> str:
        return self.reviewer_id or f"token:{self.token_id}"


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; roles: {', '.join(ROLES)}", field="role")


def add_reviewer(session: Session, *, reviewer_id: str, display_name: str | None = None,
                 role: str = "reviewer", pools: list[str] | None = None,
                 skills: list[str] | None = None, may_sign: list[str] | None = None,
                 actor: str = "cli") -> ReviewerRow:
    """``may_sign``: the release-gate sign-off roles the identity may sign under (see
    :func:`grant_signoff`).

    The id must be a name the HTTP API can always address (non-blank, at most 200
    characters, no control characters, no ``/``: see
    :func:`hilt.review.text_checks.check_reviewer_id`); a display name, when given, at
    most 200 characters without control characters."""
    from hilt.review.text_checks import (
        REVIEWER_ID_MAX,
        check_name,
        check_names,
        check_reviewer_id,
    )

    check_reviewer_id(reviewer_id, "reviewer_id")
    if display_name:
        check_name(display_name, "display_name", REVIEWER_ID_MAX)
    _check_role(role)
    # Names a task can match: a blank or overlong pool or skill would match none.
    pools, skills = check_names(pools or ["default"], "pool"), check_names(skills or [], "skill")
    grants = sorted({check_signoff_role(r, "--may-sign") for r in may_sign or []})
    if grants:
        _check_may_sign(reviewer_id, role, "--may-sign")
    if session.get(ReviewerRow, reviewer_id) is not None:
        raise Conflict(f"reviewer {reviewer_id!r} already exists")
    _refuse_lookalike(session, reviewer_id)
    row = ReviewerRow(id=reviewer_id, display_name=display_name or reviewer_id, role=role,
                      pools=sorted(pools or ["default"]), skills=sorted(skills or []),
                      signoff_roles=grants, status="onboarding", active=True,
                      created_at=utcnow())
    session.add(row)
    session.flush()
    audit.append(session, actor=actor, action="reviewer.create", entity_type="reviewer",
                 entity_id=reviewer_id, payload={"role": role, "pools": row.pools,
                                                 "skills": row.skills,
                                                 "signoff_roles": grants})
    return row


def _folded(name: str) -> str:
    # as the gate's sign-off count compares signers (hilt.gate.evaluate.same_person)
    return " ".join(name.split()).casefold()


def _refuse_lookalike(session: Session, reviewer_id: str) -> None:
    """A new id that differs from an existing one only in case or spacing ("Lou" beside
    "lou") is refused: the gate counts sign-offs by name with case and spacing folded, so
    the two would be one person there and two everywhere else."""
    folded = _folded(reviewer_id)
    for existing in session.execute(sa.select(ReviewerRow.id)).scalars():
        if _folded(existing) == folded:
            raise Conflict(f"reviewer {reviewer_id!r} differs from the existing "
                           f"{existing!r} only in case or spacing; ids that fold to one "
                           "name would be one person to the release gate's sign-off count")


def check_signoff_role(value: object, field: str = "role") -> str:
    """A sign-off role name, stripped: non-blank, at most 100 characters (what
    ``gate_signoffs.role`` holds), no NUL or other control characters."""
    from hilt.review.text_checks import check_name

    return check_name(value.strip() if isinstance(value, str) else value, field)


def _check_may_sign(reviewer_id: str, role: str, field: str) -> None:
    # a grant to someone whose role may never sign would look like a permission it is not
    if role not in SIGNER_ROLES:
        raise InputError(f"reviewer {reviewer_id!r} has role {role!r}; only "
                         f"{' or '.join(SIGNER_ROLES)} identities may sign a gate decision "
                         "off", field=field)


def grant_signoff(session: Session, reviewer_id: str, signoff_role: str, *,
                  actor: str = "cli") -> dict[str, Any]:
    """Let a lead or admin identity sign gate decisions off under ``signoff_role``.
    Granting a role already held changes nothing (and writes no audit entry)."""
    role = check_signoff_role(signoff_role)
    reviewer = _reviewer_for_update(session, reviewer_id)
    _check_may_sign(reviewer_id, reviewer.role, "reviewer")
    held = list(reviewer.signoff_roles or [])
    if role in held:
        return {"reviewer": reviewer_id, "signoff_roles": held, "changed": False}
    return _set_grants(session, reviewer, sorted({*held, role}), role, actor,
                       "reviewer.grant_signoff")


def revoke_signoff(session: Session, reviewer_id: str, signoff_role: str, *,
                   actor: str = "cli") -> dict[str, Any]:
    """Withdraw a sign-off grant. Sign-offs already given stay in the records that hold
    them; only new ones are refused. A role not held is refused, so that a typo does not
    look like a revocation."""
    role = check_signoff_role(signoff_role)
    reviewer = _reviewer_for_update(session, reviewer_id)
    held = list(reviewer.signoff_roles or [])
    if role not in held:
        raise InputError(f"reviewer {reviewer_id!r} holds no {role!r} sign-off grant "
                         f"(grants: {', '.join(held) or 'none'})", field="role")
    return _set_grants(session, reviewer, [r for r in held if r != role], role, actor,
                       "reviewer.revoke_signoff")


def _reviewer_for_update(session: Session, reviewer_id: str) -> ReviewerRow:
    reviewer = session.get(ReviewerRow, reviewer_id, with_for_update=True)
    if reviewer is None:
        raise NotFound(f"reviewer {reviewer_id!r} does not exist")
    return reviewer


def _set_grants(session: Session, reviewer: ReviewerRow, grants: list[str], role: str,
                actor: str, action: str) -> dict[str, Any]:
    # a new list, never changed in place: the JSON column is saved only when reassigned
    reviewer.signoff_roles = grants
    audit.append(session, actor=actor, action=action, entity_type="reviewer",
                 entity_id=reviewer.id, payload={"role": role, "signoff_roles": grants})
    return {"reviewer": reviewer.id, "signoff_roles": grants, "changed": True}


# The HTTP body of a (de)activation bounds its reason to this many characters.
ACTIVATION_REASON_MAX = 1000


def check_activation_reason(reason: object, field: str = "reason") -> str:
    """The reason of a deactivation or reactivation: one line of text (it may be empty)
    of at most :data:`ACTIVATION_REASON_MAX` characters, without NUL or other control
    characters, as names are (:func:`hilt.review.text_checks.check_name`): it is
    written into the audit log and into the end of each lease it ends."""
    from hilt.review.text_checks import check_length

    if not isinstance(reason, str):
        raise InputError("must be text", field=field)
    check_length(reason, field, ACTIVATION_REASON_MAX)
    if any(ord(c) < 32 or ord(c) == 127 for c in reason):
        raise InputError("must not contain control characters (NUL, newline, tab, ...)",
                         field=field)
    return reason


def set_reviewer_active(session: Session, reviewer_id: str, active: bool, *,
                        actor: str = "cli", reason: str = "") -> dict[str, Any]:
    """Deactivate (or reactivate) a reviewer identity. Deactivating refuses their tokens,
    ends their page sessions and their leases (the slots go back to the queue); the
    reviews they already submitted stay. Returns what changed. A ``reason`` is checked
    by :func:`check_activation_reason` (``InputError`` naming ``reason``)."""
    check_activation_reason(reason)
    reviewer = _reviewer_for_update(session, reviewer_id)
    sessions_ended = leases_ended = 0
    if not active:
        tokens = sa.select(TokenRow.id).where(TokenRow.reviewer_id == reviewer_id)
        ended = session.execute(
            sa.delete(WebSessionRow).where(WebSessionRow.token_id.in_(tokens)))
        sessions_ended = int(getattr(ended, "rowcount", 0) or 0)
        from hilt.review.queue import end_reviewer_leases

        why = "reviewer deactivated" + (f": {reason}" if reason else "")
        leases_ended = end_reviewer_leases(session, reviewer_id, actor=actor, reason=why)
    before, reviewer.active = reviewer.active, active
    # This process refuses their tokens and sessions at once; others within
    # HILT_AUTH_CACHE_S (see _RECENT).
    _RECENT.clear()
    result = {"reviewer": reviewer_id, "active": active, "was_active": before,
              "sessions_ended": sessions_ended, "leases_ended": leases_ended}
    audit.append(session, actor=actor,
                 action="reviewer.activate" if active else "reviewer.deactivate",
                 entity_type="reviewer", entity_id=reviewer_id,
                 payload={**result, "reason": reason})
    return result


class TokenExpired(Exception):
    """A token that is past its ``expires_at``: known and not revoked, but refused."""

    def __init__(self, token_id: str, expired_at: datetime) -> None:
        self.token_id, self.expired_at = token_id, expired_at
        super().__init__(f"the token expired at {expired_at.isoformat()}")


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
    from now; without, it never expires."""
    _check_role(role)
    if expires_in is not None:
        check_token_lifetime(expires_in)
    if reviewer_id is not None:
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
                     "expires_at": expires_at.isoformat() if expires_at else None})
    return token_id, secret


def revoke_token(session: Session, token_id: str, *, actor: str = "cli") -> None:
    row = session.get(TokenRow, token_id)
    if row is None:
        raise NotFound(f"token {token_id!r} does not exist")
    row.revoked_at = utcnow()
    _RECENT.clear()
    audit.append(session, actor=actor, action="token.revoke", entity_type="api_token",
                 entity_id=token_id, payload={})


def authenticate(session: Session, secret: str) -> Principal | None:
    """The principal of a live token; None for an unknown or revoked one, or one whose
    reviewer is deactivated. Raises :class:`TokenExpired` for a token past its expiry,
    so that its holder can be told why (it is known to whoever holds the secret)."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    row = session.execute(sa.select(TokenRow).where(
        TokenRow.token_hash == sha256_hex(secret), TokenRow.revoked_at.is_(None))
    ).scalar_one_or_none()
    if row is None:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise TokenExpired(row.id, row.expires_at)
    return _principal_of(session, row)


def _principal_of(session: Session, row: TokenRow) -> Principal | None:
    if row.reviewer_id is not None:
        reviewer = session.get(ReviewerRow, row.reviewer_id)
        if reviewer is None or not reviewer.active:
            return None
    return Principal(row.id, row.role, row.reviewer_id, row.name, row.expires_at)


def token_status(row: TokenRow, now: datetime | None = None) -> str:
    """``revoked``, ``expired`` or ``active`` (a revocation is told over an expiry)."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


# Token id -> time.monotonic() of this process's last write of its last_used_at.
_USE_WRITTEN: dict[str, float] = {}
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
    if len(_USE_WRITTEN) >= _RECENT_MAX:
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


# --- web sessions -----------------------------------------------------------------------

def start_session(session: Session, token_id: str,
                  lifetime: timedelta = SESSION_LIFETIME) -> str:
    """Open a page session for a token; returns the session id (only its hash is kept)."""
    now = utcnow()
    # Expired sessions are useless; sign-in is a cheap moment to drop them.
    session.execute(sa.delete(WebSessionRow).where(WebSessionRow.expires_at <= now))
    session_id = secrets.token_urlsafe(32)
    ends = now + lifetime
    token_expires = session.execute(
        sa.select(TokenRow.expires_at).where(TokenRow.id == token_id)).scalar_one_or_none()
    if token_expires is not None:  # a session never outlives its token
        ends = min(ends, token_expires)
    session.add(WebSessionRow(id_hash=sha256_hex(session_id), token_id=token_id,
                              created_at=now, expires_at=ends))
    session.flush()
    return session_id


def session_principal(session: Session, session_id: str) -> Principal | None:
    """The caller of a live session (not ended, not expired, its token neither revoked nor
    expired), which is then remembered for a few seconds like a token (see
    :func:`recent_session`), never past the session's or the token's expiry."""
    now = utcnow()
    found = session.execute(
        sa.select(TokenRow, WebSessionRow.expires_at)
        .join(WebSessionRow, WebSessionRow.token_id == TokenRow.id)
        .where(WebSessionRow.id_hash == sha256_hex(session_id),
               WebSessionRow.expires_at > now, TokenRow.revoked_at.is_(None),
               sa.or_(TokenRow.expires_at.is_(None), TokenRow.expires_at > now))
    ).first()
    if found is None:
        return None
    principal = _principal_of(session, found[0])
    if principal is not None:
        left = (found[1] - now).total_seconds()
        _remember(_SESSION + sha256_hex(session_id), principal, max_ttl=left)
    return principal


def recent_session(session_id: str) -> Principal | None:
    """The principal of a session that was looked up in the last few seconds."""
    return _recall(_SESSION + sha256_hex(session_id))


def end_session(session: Session, session_id: str) -> None:
    """Sign-out: the session id stops working at once (in this process; in others once
    their cache entry lapses, within ``HILT_AUTH_CACHE_S``)."""
    key = sha256_hex(session_id)
    session.execute(sa.delete(WebSessionRow).where(WebSessionRow.id_hash == key))
    _RECENT.pop(_SESSION + key, None)


def list_tokens(session: Session) -> list[dict[str, Any]]:
    """Every token, oldest first: ``expires_at`` is ``"never"`` for a token without
    expiry, ``last_used_at`` None for one not used yet; ``status`` is
    :func:`token_status`."""
    now = utcnow()
    rows = session.execute(sa.select(TokenRow).order_by(TokenRow.created_at)).scalars()
    return [{"id": r.id, "role": r.role, "name": r.name, "reviewer_id": r.reviewer_id,
             "status": token_status(r, now),
             "created_at": r.created_at.isoformat(),
             "expires_at": r.expires_at.isoformat() if r.expires_at else "never",
             "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
             "revoked": r.revoked_at is not None} for r in rows]


# Tokens that authenticated in the last few seconds, by hash, so that a busy API worker
# does not look the same token up on every request. A revocation in this process empties
# it at once; one made by another process (the CLI, another worker) takes effect within
# HILT_AUTH_CACHE_S seconds (default 5; 0 turns the cache off). Failures are not cached.
# Web sessions share the cache under their own prefix: a session id is never accepted as
# a token, nor a token as a session id. Neither is remembered past its (or its token's)
# expiry.
_RECENT: dict[str, tuple[float, Principal]] = {}
_RECENT_MAX = 10_000
_TOKEN, _SESSION = "token:", "session:"


def recent_principal(secret: str) -> Principal | None:
    return _recall(_TOKEN + sha256_hex(secret))


def remember_principal(secret: str, principal: Principal) -> None:
    _remember(_TOKEN + sha256_hex(secret), principal)


def _recall(key: str) -> Principal | None:
    hit = _RECENT.get(key)
    if hit is None or hit[0] < time.monotonic():
        return None
    return hit[1]


def _remember(key: str, principal: Principal, max_ttl: float | None = None) -> None:
    ttl = env_float("HILT_AUTH_CACHE_S", 5.0, minimum=0)
    if max_ttl is not None:
        ttl = min(ttl, max_ttl)
    if principal.expires_at is not None:
        # an expiring token is forgotten when it expires, whatever HILT_AUTH_CACHE_S says
        ttl = min(ttl, (principal.expires_at - utcnow()).total_seconds())
    if ttl <= 0:
        return
    if len(_RECENT) >= _RECENT_MAX:
        _RECENT.clear()
    _RECENT[key] = (time.monotonic() + ttl, principal)
