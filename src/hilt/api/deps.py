"""Request-scoped dependencies: the database session and the caller's identity.

``allow(*roles)`` is the one place that says who may call an endpoint; every route but
``/healthz`` must depend on it (checked at start-up by :func:`hilt.api.app.create_app`).
``KNOWN_QUERY`` refuses query parameters an endpoint does not declare, and
``CHECKED_BODY`` a body that is not plain, readable JSON (see :mod:`hilt.api.bodies`);
the app adds both to every API route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hilt.access import (
    ROLES,
    Principal,
    TokenExpired,
    authenticate,
    recent_principal,
    recent_session,
    record_use,
    remember_principal,
    session_principal,
)
from hilt.api.bodies import PROBLEM_KEY
from hilt.errors import InputError
from hilt.store.db import read_snapshot, transaction
from hilt.web.security import SESSION_COOKIE, bearer_token

_bearer = HTTPBearer(auto_error=False, description="an API token from `hilt token create`")


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns normally."""
    with transaction(request.app.state.engine) as session:
        yield session


# Use as ``session: Session = DB``. scope="function": the transaction commits before the
# response is sent, so a client that got a 200 can rely on the change being visible to
# its next request (the default scope would commit after the response).
DB = Depends(get_session, scope="function")


async def _principal(request: Request,
                     _credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
                     ) -> Principal:
    # _bearer only declares the scheme in the OpenAPI schema; the header is read here.
    # async: a recently seen token is answered without a database round trip or a hop
    # to the thread pool (see hilt.access.recent_principal).
    header = request.headers.get("authorization")
    if header is not None:
        # Never the cookie when a header is present: CsrfMiddleware exempts exactly the
        # requests with a well-formed Bearer header, so the cookie may only authenticate
        # requests it checked.
        token = bearer_token(header)
        if token is None:
            raise HTTPException(401, "malformed Authorization header; expected "
                                "'Bearer <token>'", headers={"WWW-Authenticate": "Bearer"})
        principal = recent_principal(token) or await run_in_threadpool(
            _lookup, request, token)
    else:
        # The cookie holds a page session id (see hilt.web.security), never a token: a
        # token put there is refused like any unknown session.
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            raise HTTPException(401, "missing API token",
                                headers={"WWW-Authenticate": "Bearer"})
        principal = recent_session(session_id) or await run_in_threadpool(
            _lookup_session, request, session_id)
        if principal is None:
            raise HTTPException(401, "the session ended or expired; sign in again",
                                headers={"WWW-Authenticate": "Bearer"})
    if principal is None:
        raise HTTPException(401, "invalid or revoked API token",
                            headers={"WWW-Authenticate": "Bearer"})
    request.state.principal = principal
    return principal


def _lookup(request: Request, token: str) -> Principal | None:
    # A short read-only session of its own, so authentication never holds a write lock;
    # the token's last use is written after it, at most about once a minute.
    engine = request.app.state.engine
    try:
        with read_snapshot(engine) as session:
            principal = authenticate(session, token)
    except TokenExpired as expired:
        # Its holder is told why (the secret is not repeated): an expired token is
        # replaced, not retried.
        raise HTTPException(401, f"the API token expired at "
                            f"{expired.expired_at.isoformat()}; ask for a new one",
                            headers={"WWW-Authenticate": "Bearer"}) from None
    if principal is not None:
        remember_principal(token, principal)
        record_use(engine, principal)
    return principal


def _lookup_session(request: Request, session_id: str) -> Principal | None:
    engine = request.app.state.engine
    with read_snapshot(engine) as session:
        principal = session_principal(session, session_id)
    if principal is not None:  # a page session uses its token
        record_use(engine, principal)
    return principal


def allow(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency admitting the given roles (and admin); 401 without token, 403 otherwise."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    admitted = frozenset(roles) | {"admin"}

    async def dependency(principal: Principal = Depends(_principal)) -> Principal:
        if principal.role not in admitted:
            raise HTTPException(403, f"role {principal.role!r} may not call this endpoint")
        return principal

    dependency.hilt_roles = admitted  # type: ignore[attr-defined]
    return dependency


ANY_ROLE = ROLES


def query_names(route: Any) -> frozenset[str]:
    """The query parameters a route declares, its dependencies' included (worked out
    once per route and kept on it)."""
    found: frozenset[str] | None = getattr(route, "hilt_query_names", None)
    if found is None:
        names: set[str] = set()
        stack = [route.dependant]
        while stack:
            dependant = stack.pop()
            names.update(param.alias for param in dependant.query_params)
            stack.extend(dependant.dependencies)
        found = frozenset(names)
        route.hilt_query_names = found
    return found


async def known_query_only(request: Request, _: Principal = Depends(_principal)) -> None:
    """422 for a query parameter the endpoint does not declare, naming it: a misspelt
    filter (``?stauts=gold``) would otherwise be ignored and the request answered as if
    unfiltered. Runs after authentication (401 first), so only a caller with a token
    learns which parameters an endpoint takes (as the OpenAPI schema tells it anyway)."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    known = query_names(route)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = f"known: {', '.join(sorted(known))}" if known else \
            "this endpoint takes no query parameters"
        raise InputError(f"unknown parameter {unknown[0]!r}; {takes}", field=unknown[0])


# Use as ``dependencies=[KNOWN_QUERY]`` on a router or route.
KNOWN_QUERY = Depends(known_query_only)


def declared_roles(route: Any) -> set[str] | None:
    """The roles a route admits (its :func:`allow` dependencies'), None if it declares
    none."""
    found: set[str] = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "hilt_roles", None)
        if roles is not None:
            found |= set(roles)
        stack.extend(dep.dependencies)
    return found or None


async def body_checked(request: Request, principal: Principal = Depends(_principal)
                       ) -> None:
    """Answer what :class:`hilt.api.bodies.JsonBodyMiddleware` found wrong with the body:
    415 when it is not plain JSON, 422 naming the field when it cannot be read as JSON
    (a repeated key, nesting past the limit). In the order FastAPI answers a body that
    fails validation, and the event ingest its own body: after the token (401) and the
    role (403, left to the route's own check). On a route that takes no body the body
    is ignored, as FastAPI ignores it."""
    problem = request.scope.get(PROBLEM_KEY)
    if problem is None:
        return
    route = request.scope.get("route")
    if route is not None:
        if getattr(route, "body_field", None) is None:
            return
        admitted = declared_roles(route) if hasattr(route, "dependant") else None
        if admitted is not None and principal.role not in admitted:
            return  # the route's allow() refuses the caller next: 403 comes first
    raise problem


# Use as ``dependencies=[CHECKED_BODY]`` on a router or route.
CHECKED_BODY = Depends(body_checked)
