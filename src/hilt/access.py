"""Who may do what: roles, reviewer identities and API tokens.

Tokens are random secrets shown once and stored only as sha256 hashes (they carry
~256 bits of entropy, so a slow password hash would add nothing). Each HTTP endpoint
declares the roles it admits through :func:`hilt.api.deps.allow`; ``admin`` is admitted
everywhere.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.canonical import sha256_hex
from hilt.errors import Conflict, InputError, NotFound
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import ReviewerRow, TokenRow

ROLES = ("admin", "lead", "adjudicator", "reviewer", "service")
TOKEN_PREFIX = "hilt_"


@dataclass(frozen=True)
class Principal:
    """The caller of an API request: a token's role and, for people, their reviewer id."""

    token_id: str
    role: str
    reviewer_id: str | None
    name: str

    @property
    def actor(self) -> str:
        return self.reviewer_id or f"token:{self.token_id}"


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; roles: {', '.join(ROLES)}", field="role")


def add_reviewer(session: Session, *, reviewer_id: str, display_name: str | None = None,
                 role: str = "reviewer", pools: list[str] | None = None,
                 skills: list[str] | None = None, actor: str = "cli") -> ReviewerRow:
    _check_role(role)
    if session.get(ReviewerRow, reviewer_id) is not None:
        raise Conflict(f"reviewer {reviewer_id!r} already exists")
    row = ReviewerRow(id=reviewer_id, display_name=display_name or reviewer_id, role=role,
                      pools=sorted(pools or ["default"]), skills=sorted(skills or []),
                      status="onboarding", active=True, created_at=utcnow())
    session.add(row)
    session.flush()
    audit.append(session, actor=actor, action="reviewer.create", entity_type="reviewer",
                 entity_id=reviewer_id, payload={"role": role, "pools": row.pools,
                                                 "skills": row.skills})
    return row


def create_token(session: Session, *, role: str, name: str = "",
                 reviewer_id: str | None = None, actor: str = "cli") -> tuple[str, str]:
    """Create a token; returns ``(token_id, secret)``. The secret is not stored."""
    _check_role(role)
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
    session.add(TokenRow(id=token_id, token_hash=sha256_hex(secret), role=role,
                         name=name or role, reviewer_id=reviewer_id, created_at=utcnow()))
    session.flush()
    audit.append(session, actor=actor, action="token.create", entity_type="api_token",
                 entity_id=token_id, payload={"role": role, "reviewer_id": reviewer_id,
                                              "name": name or role})
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
    if not secret.startswith(TOKEN_PREFIX):
        return None
    row = session.execute(sa.select(TokenRow).where(
        TokenRow.token_hash == sha256_hex(secret), TokenRow.revoked_at.is_(None))
    ).scalar_one_or_none()
    if row is None:
        return None
    if row.reviewer_id is not None:
        reviewer = session.get(ReviewerRow, row.reviewer_id)
        if reviewer is None or not reviewer.active:
            return None
    return Principal(row.id, row.role, row.reviewer_id, row.name)


def list_tokens(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(sa.select(TokenRow).order_by(TokenRow.created_at)).scalars()
    return [{"id": r.id, "role": r.role, "name": r.name, "reviewer_id": r.reviewer_id,
             "created_at": r.created_at.isoformat(),
             "revoked": r.revoked_at is not None} for r in rows]


# Tokens that authenticated in the last few seconds, by hash, so that a busy API worker
# does not look the same token up on every request. A revocation in this process empties
# it at once; one made by another process (the CLI, another worker) takes effect within
# HILT_AUTH_CACHE_S seconds (default 5; 0 turns the cache off). Failures are not cached.
_RECENT: dict[str, tuple[float, Principal]] = {}
_RECENT_MAX = 10_000


def recent_principal(secret: str) -> Principal | None:
    hit = _RECENT.get(sha256_hex(secret))
    if hit is None or hit[0] < time.monotonic():
        return None
    return hit[1]


def remember_principal(secret: str, principal: Principal) -> None:
    ttl = float(os.environ.get("HILT_AUTH_CACHE_S", "5"))
    if ttl <= 0:
        return
    if len(_RECENT) >= _RECENT_MAX:
        _RECENT.clear()
    _RECENT[sha256_hex(secret)] = (time.monotonic() + ttl, principal)
