"""Tokens API: create, list, revoke and re-expire API tokens, as ``hilt token`` does on
the command line, for admins only.

The same checks and messages as the command line: a bad role, name, reviewer or
lifetime is a 422 naming the body's field, an unknown token a 404, a new expiry for a
revoked token a 409. A new token's secret is in the creation reply only; no other reply
holds a secret or a hash.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field
from sqlalchemy.orm import Session

from hilt.access import Principal
from hilt.access_tokens import (
    TOKEN_ORDER,
    create_token,
    expiry_message,
    revocation_message,
    revoke_token,
    set_token_expiry,
    token_fields,
    token_lifetime,
    token_rows,
)
from hilt.api.bodies import RequestBody
from hilt.api.deps import DB, allow
from hilt.api.paging import PAGED, after_query, one_page
from hilt.api.schemas import declared
from hilt.api.schemas.tokens import TokenCreated, TokenExpiry, TokenInfo, TokenRevoked
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import TokenRow

router = APIRouter(prefix="/v1", tags=["tokens"])
LIFETIME = ("a whole number and a unit, counted from now: 45s, 90m, 12h, 30d, 2w (at "
            "most 366d), or 'never'")


class TokenIn(RequestBody):
    role: str = Field(description="admin, lead, adjudicator, reviewer or service")
    name: str = Field(default="", description="a label for people (default: the role)")
    reviewer: str | None = Field(default=None, description="the reviewer identity it "
                                 "belongs to (required for reviewer and adjudicator "
                                 "tokens)")
    expires_in: str | None = Field(default=None, description=f"its lifetime: {LIFETIME}; "
                                   "absent or null: never")


class ExpiryIn(RequestBody):
    expires_in: str = Field(description=f"the token's new lifetime: {LIFETIME}")


@router.post("/tokens", status_code=201, responses=declared(TokenCreated, 201))
def create(body: TokenIn, session: Session = DB,
           who: Principal = Depends(allow("admin"))) -> dict[str, Any]:
    """Create an API token, as ``hilt token create`` does. The secret (``token``) is in
    this reply only; hilt keeps its sha256."""
    lifetime = token_lifetime(body.expires_in or "never")
    token_id, secret = create_token(session, role=body.role, name=body.name,
                                    reviewer_id=body.reviewer, expires_in=lifetime,
                                    actor=who.actor)
    return {**token_fields(session.get_one(TokenRow, token_id)), "token": secret}


@router.get("/tokens", responses=declared(list[TokenInfo], 200, PAGED))
def tokens(request: Request, response: Response, limit: int = Query(100, ge=1, le=1000),
           after: str | None = after_query(), session: Session = DB,
           _: Principal = Depends(allow("admin"))) -> list[dict[str, Any]]:
    """Tokens, oldest first (those made in the same instant by id), as ``hilt token
    list`` shows them (never a secret or a hash), ``limit`` a page. When more follow,
    the ``X-Next-After`` header holds the cursor to pass as ``after`` for the next page
    and ``Link`` (``rel="next"``) that page's URL; neither is there on the last page. A
    cursor hilt did not give is a 422 naming ``after``."""
    rows = token_rows(session, limit=limit + 1, after=after)
    now = utcnow()
    return [token_fields(r, now) for r in one_page(rows, limit, TOKEN_ORDER, request,
                                                   response)]


@router.post("/tokens/{token_id}/revoke", responses=declared(TokenRevoked))
def revoke(token_id: str, session: Session = DB,
           who: Principal = Depends(allow("admin"))) -> dict[str, Any]:
    """Revoke a token: this process refuses it at once, other API workers within
    ``HILT_AUTH_CACHE_S`` seconds. A token already revoked is left as it is
    (``changed`` false). The token this request was made with may be revoked too
    (``own_token`` true): it authenticates nothing after this reply."""
    result = revoke_token(session, token_id, actor=who.actor)
    own = token_id == who.token_id
    message = revocation_message(result)
    if own and result["changed"]:
        message += "; it is the token of this request, which authenticates nothing from now on"
    return {**result, "own_token": own, "message": message}


@router.post("/tokens/{token_id}/expiry", responses=declared(TokenExpiry))
def expire(token_id: str, body: ExpiryIn, session: Session = DB,
           who: Principal = Depends(allow("admin"))) -> dict[str, Any]:
    """Give a token a new expiry counted from now (``never``: until revoked), as ``hilt
    token expire`` does. An expired token may be given a new lifetime (``was_expired``);
    a revoked one may not (409)."""
    lifetime = token_lifetime(body.expires_in)
    result = set_token_expiry(session, token_id, lifetime, actor=who.actor)
    return {**result, "message": expiry_message(result)}
