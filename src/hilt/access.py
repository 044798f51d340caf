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

A token may be given a lifetime (``hilt token create --expires-in 30d``, changed later
by ``hilt token expire``); past its ``expires_at`` it authenticates nowhere
(:class:`TokenExpired`). Without one it never expires. When a token last authenticated
is kept in ``last_used_at``, written at most about once a minute per token
(:func:`record_use`). Creating, revoking, expiring and listing tokens is
:mod:`hilt.access_tokens`, whose names are importable from here too.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

# Re-exported as well: callers import the token functions from here.
from hilt.access_tokens import (  # noqa: F401
    LAST_USED_INTERVAL,
    TOKEN_MAX_LIFETIME,
    TOKEN_PREFIX,
    check_token_lifetime,
    create_token,
    expiry_message,
    list_tokens,
    record_use,
    revocation_message,
    revoke_token,
    set_token_expiry,
    token_fields,
    token_lifetime,
    token_status,
)
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
# How long a page session lasts after sign-in (a working day; sign in again after).
SESSION_LIFETIME = timedelta(hours=12)


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


def check_role(role: str) -> None:
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
    check_role(role)
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
    # This process refuses their tokens and sessions at once (and again after the commit,
    # so a request that authenticated in between is not remembered); others within
    # HILT_AUTH_CACHE_S (see _RECENT).
    forget_recent(session)
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


def forget_recent(session: Session) -> None:
    """Forget every remembered token and session after a change to who may do what (a
    revocation, a new expiry, a deactivation) in ``session``: this process looks each one
    up again. Now, and again once the change commits: a request that authenticated in
    between (reading the token as it was before the commit) must not stay remembered."""
    _RECENT.clear()
    sa.event.listen(session, "after_commit", lambda _s: _RECENT.clear(), once=True)


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
