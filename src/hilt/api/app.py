"""The HTTP application. Routers are thin: they translate HTTP to stage-module calls.

Every route except ``/healthz`` requires a token, the OpenAPI schema and docs included;
:func:`create_app` refuses to start if a route forgot to declare its roles. Every API
route refuses query parameters it does not declare (:data:`hilt.api.deps.KNOWN_QUERY`),
every request body is bounded (:func:`body_limit`), and every API body is read as strict
JSON (:mod:`hilt.api.bodies`: a repeated key, deep nesting or another Content-Type is
refused).
"""

from __future__ import annotations

import concurrent.futures
import importlib
import math
import threading
from datetime import UTC, datetime
from html import escape
from typing import Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, StatementError

import hilt
from hilt.api.bodies import JsonBodyMiddleware
from hilt.api.deps import (
    ANY_ROLE,
    CHECKED_BODY,
    KNOWN_QUERY,
    allow,
    declared_roles,
    query_names,
)
from hilt.api.errors import ERROR_RESPONSES
from hilt.api.routers.events import MAX_BODY_BYTES as MAX_EVENTS_BODY_BYTES
from hilt.api.schemas import declared
from hilt.api.schemas.ops import Health
from hilt.errors import Conflict, Forbidden, HiltError, InputError, NotFound
from hilt.store.db import make_engine, session_factory
from hilt.web.security import (
    MAX_FORM_BYTES,
    PAGE_HEADERS,
    PAGE_PREFIX,
    BodyLimitMiddleware,
)

# The stages with HTTP endpoints; each module exposes ``router``.
# Matched in this order: the reviewer queue, the busiest routes, first.
ROUTERS = ("queue", "events", "review", "quality", "data", "drift", "gate", "ops", "tokens")
PUBLIC_PATHS = frozenset({"/healthz"})
# Pages may add public paths (the sign-in page); the app records them in
# ``app.state.public_paths`` and every other route must still declare its roles.

# Any API body but an event batch: rubrics (whose YAML form may be MAX_FORM_BYTES),
# rule sets, selection specs, answers.
MAX_API_BODY_BYTES = 4 * 1024 * 1024


def body_limit(path: str) -> int:
    """The largest request body ``path`` takes: an event batch, a page form, or any
    other API body. Larger bodies get 413 unread (see
    :class:`hilt.web.security.BodyLimitMiddleware`)."""
    if path == "/v1/events":
        return MAX_EVENTS_BODY_BYTES
    if path == PAGE_PREFIX or path.startswith(PAGE_PREFIX + "/"):
        return MAX_FORM_BYTES
    return MAX_API_BODY_BYTES


def reads_json_body(path: str) -> bool:
    """Whether :class:`hilt.api.bodies.JsonBodyMiddleware` reads the bodies sent to
    ``path``: every API path but the event ingest, which reads its batch itself after
    the token check (and validates it in one pass, see hilt.events.validate)."""
    return path.startswith("/v1/") and path != "/v1/events"


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every endpoint, including those of included routers (which hold full paths)."""
    found: list[APIRoute] = []
    stack = list(app.routes)
    while stack:
        route = stack.pop(0)
        if isinstance(route, APIRoute):
            found.append(route)
            continue
        nested = getattr(route, "original_router", None) or getattr(route, "router", None)
        if nested is not None and hasattr(nested, "routes"):
            stack.extend(nested.routes)
    return found


def public_paths(app: FastAPI) -> frozenset[str]:
    return frozenset(getattr(app.state, "public_paths", PUBLIC_PATHS))


def routes_without_roles(app: FastAPI) -> list[str]:
    public = public_paths(app)
    return [r.path for r in api_routes(app)
            if r.path not in public and declared_roles(r) is None]


def route_roles(app: FastAPI) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    public = public_paths(app)
    for r in api_routes(app):
        if r.path not in public:
            for method in r.methods or ():
                out[(method, r.path)] = declared_roles(r) or set()
    return out


def _error_handlers(app: FastAPI) -> None:
    status = {InputError: 422, NotFound: 404, Conflict: 409, Forbidden: 403}

    # A safety net behind request validation: a number the database cannot store is the
    # client's error (422), never a server error.
    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "a value is out of the range the database can store"},
                            status_code=422)

    # FastAPI's own handler echoes each error's input; a NaN or Infinity literal in the
    # body would then make the response itself unserialisable (a 500 instead of 422).
    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError
                               ) -> JSONResponse:
        return JSONResponse({"detail": json_safe(jsonable_encoder(exc.errors()))},
                            status_code=422)

    # A value that cannot even be bound to a statement (a time whose UTC form falls
    # before year 1 or after 9999) reaches here wrapped by SQLAlchemy: the same 422,
    # naming the query parameter when one is at fault. The handlers are looked up when
    # the error happens, so that pages answer it in HTML (see hilt.web.pages).
    @app.exception_handler(StatementError)
    async def _unbindable(request: Request, exc: StatementError) -> Response:
        if not isinstance(exc.orig, OverflowError):
            raise exc
        field = _overflowing_query_parameter(request)
        if field is None:
            response: Response = await request.app.exception_handlers[OverflowError](
                request, exc.orig)
            return response
        error = InputError("a time out of the range the database can store "
                           "(years 1 to 9999 in UTC)", field=field)
        response = await request.app.exception_handlers[HiltError](request, error)
        return response

    @app.exception_handler(HiltError)
    async def _hilt_error(_request: Request, exc: HiltError) -> JSONResponse:
        code = next((c for t, c in status.items() if isinstance(exc, t)), 400)
        body: dict[str, Any] = {"detail": str(exc)}
        if isinstance(exc, InputError):
            body["error"] = exc.as_dict()
        return JSONResponse(body, status_code=code)


_TIME = TypeAdapter(datetime)


def _overflowing_query_parameter(request: Request) -> str | None:
    """The first query parameter of the route whose value reads as a time that has no
    UTC form (``9999-12-31T23:59:59-23:59``), if any."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return None
    for name in sorted(query_names(route)):
        for raw in request.query_params.getlist(name):
            try:
                when = _TIME.validate_python(raw)
            except ValidationError:
                continue
            try:
                when.astimezone(UTC)
            except OverflowError:
                return name
    return None


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as its JSON5 spelling (a string), so that
    strict JSON can carry it."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the models of bodies that routes validate themselves."""
    from hilt.api.routers.events import BODY_DEFINITIONS

    schema = app.openapi()
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in BODY_DEFINITIONS.items():
        components.setdefault(name, definition)
    for route in api_routes(app):
        # path_format: a route with a :path parameter is listed without the convertor
        _declared_bodies_only(route, schema["paths"].get(route.path_format, {}))
    return schema


def _declared_bodies_only(route: APIRoute, operations: dict[str, Any]) -> None:
    """Each response body ``route`` declares a model for, as that model alone.

    FastAPI merges a declared model into the schema it derives from the handler's
    return annotation (``dict[str, Any]``: an untyped object), which leaves
    ``additionalProperties: true`` and a title beside the model's ``$ref``."""
    for status, spec in route.responses.items():
        if "model" not in spec:
            continue
        for method in route.methods or ():
            content = (operations.get(method.lower(), {}).get("responses", {})
                       .get(str(status), {}).get("content", {}))
            for media in content.values():
                if "schema" in media:
                    media["schema"] = _model_part(media["schema"])


def _model_part(schema: dict[str, Any]) -> dict[str, Any]:
    """The part of a merged schema that a model (``$ref``) or a list of one gave."""
    if "$ref" in schema:
        return {"$ref": schema["$ref"]}
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return {"type": "array", "items": _model_part(schema["items"])}
    return schema


def _docs_page(app: FastAPI) -> HTMLResponse:
    """The endpoints, who may call them and what they do, as a plain page: no script,
    nothing loaded from elsewhere (the same Content-Security-Policy as the pages)."""
    roles = route_roles(app)
    rows = []
    for path, operations in _openapi(app)["paths"].items():
        for method, operation in operations.items():
            who = sorted(roles.get((method.upper(), path), ()))
            text = (operation.get("description") or "").split("\n\n")[0]
            rows.append(
                f"<tr><td><code>{escape(method.upper())}</code></td>"
                f"<td><code>{escape(path)}</code></td>"
                f"<td>{escape(', '.join(who) or 'anyone')}</td>"
                f"<td>{escape(operation.get('summary', ''))}"
                f"{'<br>' + escape(text) if text else ''}</td></tr>")
    html = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>hilt API {escape(hilt.__version__)}</title>"
        f'<link rel="stylesheet" href="{PAGE_PREFIX}/static/hilt.css"></head>'
        f"<body><main><h1>hilt API {escape(hilt.__version__)}</h1>"
        '<p>The full schema (OpenAPI 3, with every parameter and body): '
        '<a href="/openapi.json">/openapi.json</a>; open it with any OpenAPI viewer. '
        "Send the token as <code>Authorization: Bearer &lt;token&gt;</code>.</p>"
        "<table><thead><tr><th>method</th><th>path</th><th>roles</th><th>what it does"
        f"</th></tr></thead><tbody>{''.join(rows)}</tbody></table></main></body></html>")
    return HTMLResponse(html, headers=PAGE_HEADERS)


HEALTH_TIMEOUT_S = 2.0


class DatabaseProbe:
    """``SELECT 1`` on the app's engine, answered within :data:`HEALTH_TIMEOUT_S`.

    The query runs on one thread of its own: a database that hangs (a connection attempt
    to a host that drops packets waits for TCP's timeout) makes each health check answer
    "timeout" in time, and checks arriving meanwhile wait on the same query instead of
    each leaving a blocked thread behind."""

    def __init__(self, engine: Engine, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
        self.engine = engine
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._pending: concurrent.futures.Future[str | None] | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def _query(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            # The class only: a driver's message can carry the URL, user or host.
            return type(getattr(exc, "orig", None) or exc).__name__
        return None

    def problem(self) -> str | None:
        """None when the database answered; otherwise a short name of the failure."""
        with self._lock:
            if self._pending is None or self._pending.done():
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        max_workers=1, thread_name_prefix="hilt-healthz")
                self._pending = self._pool.submit(self._query)
            pending = self._pending
        try:
            return pending.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            return "timeout"


def create_app(engine: Engine | None = None, *, url: str | None = None) -> FastAPI:
    engine = engine or make_engine(url)
    app = FastAPI(title="hilt", version=hilt.__version__, docs_url=None, redoc_url=None,
                  openapi_url=None,
                  description="Human-in-the-loop toolkit: review workflows and the "
                              "feedback-to-training loop.")
    app.state.engine = engine
    app.state.session_factory = session_factory(engine)
    app.state.public_paths = PUBLIC_PATHS
    _error_handlers(app)

    probe = DatabaseProbe(engine)

    @app.get("/healthz", tags=["ops"], responses=declared(
            Health, 200, {503: {"model": Health, "description": "database unreachable"}}))
    def healthz() -> JSONResponse:
        """200 when this process can reach its database (``SELECT 1``), else 503: a load
        balancer then stops sending requests that could only fail."""
        problem = probe.problem()
        if problem is not None:
            return JSONResponse({"status": "unavailable", "version": hilt.__version__,
                                 "database": problem}, status_code=503)
        return JSONResponse({"status": "ok", "version": hilt.__version__})

    reader = allow(*ANY_ROLE)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[KNOWN_QUERY])
    def openapi(_: Any = Depends(reader)) -> JSONResponse:
        return JSONResponse(_openapi(app))

    @app.get("/docs", include_in_schema=False, dependencies=[KNOWN_QUERY])
    def docs(_: Any = Depends(reader)) -> HTMLResponse:
        return _docs_page(app)

    for name in ROUTERS:
        app.include_router(importlib.import_module(f"hilt.api.routers.{name}").router,
                           responses=ERROR_RESPONSES,
                           dependencies=[KNOWN_QUERY, CHECKED_BODY])
    from hilt.web.pages import mount

    # mount() returns the page paths that must answer without a token (sign-in).
    app.state.public_paths = PUBLIC_PATHS | frozenset(mount(app))
    app.add_middleware(JsonBodyMiddleware, applies=reads_json_body)
    # Added last, so it runs first: no other middleware reads an oversized body.
    app.add_middleware(BodyLimitMiddleware, limit_for=body_limit)
    missing = routes_without_roles(app)
    if missing:
        raise RuntimeError(f"routes without declared roles: {missing}")
    return app
