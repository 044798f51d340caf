"""Mount the pages on the HTTP application.

``mount(app)`` adds the page routers under ``/ui``, the packaged static files, the CSRF
middleware (for every cookie-authenticated state change, see :mod:`hilt.web.security`),
security headers on pages, and error handling that answers pages in HTML: a page that
needs a session redirects to the sign-in page, other errors show a readable page (also
for errors that are not hilt's own, with 500 for unexpected ones), while API paths keep
their JSON answers. It
returns the paths that answer without a token: the sign-in page and ``/`` (a redirect).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hilt.access import recent_session, session_principal
from hilt.errors import Conflict, Forbidden, HiltError, InputError, NotFound
from hilt.web import routes_adjudicate, routes_lead, routes_review
from hilt.web.render import PREFIX, STATIC_DIR, render, safe_next
from hilt.web.security import PAGE_HEADERS, SESSION_COOKIE, CsrfMiddleware, is_script_path

SIGNIN = PREFIX + "/signin"
PUBLIC = frozenset({"/", SIGNIN})
_STATUS = {InputError: 422, NotFound: 404, Conflict: 409, Forbidden: 403}
# Errors the API answers in JSON that pages answer with the same status in HTML.
_PAGE_MESSAGES: dict[type[Exception], tuple[int, str]] = {
    OverflowError: (422, "A value is out of the range the database can store."),
    DataError: (422, "A value is out of the range the database can store."),
    RequestValidationError: (422, "The request was not understood; reload the page and "
                                  "try again."),
}
log = logging.getLogger(__name__)


def _is_page(request: Request) -> bool:
    return _is_page_path(request.url.path)


def _is_page_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


class PageHeadersMiddleware:
    """Security and cache headers on pages (plain ASGI: API requests pass straight on)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (_is_page_path(path) or path == "/"):
            await self.app(scope, receive, send)
            return
        static = path.startswith(PREFIX + "/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in PAGE_HEADERS.items():
                    if not (static and name == "Cache-Control"):
                        headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


# Addresses that only take a form (POST), and the page each form lives on: the page to
# go back to from the address bar (a GET there) or after signing in again.
_FORM_PAGES = (
    (re.compile(r"/review/tasks/([^/]+)/(?:submit|skip|heartbeat)"), r"/review/tasks/\1"),
    (re.compile(r"/review/next"), "/review"),
    (re.compile(r"/adjudicate/([^/]+)"), r"/adjudicate/\1"),
    (re.compile(r"/lead/rubrics/(?:preview|publish)"), "/lead/rubrics"),
    (re.compile(r"/lead/gate/([^/]+)/signoff"), r"/lead/gate/\1"),
    (re.compile(r"/lead/drift/[^/]+/ack"), "/lead"),
    (re.compile(r"/signout"), "/"),
)


def form_page(path: str) -> str | None:
    """The page whose form posts to ``path`` (a ``/ui`` address), else ``None``."""
    inner = path.removeprefix(PREFIX)
    for pattern, page in _FORM_PAGES:
        found = pattern.fullmatch(inner)
        if found:
            return safe_next(PREFIX + quote(found.expand(page), safe="/"))
    return None


def _signin_link(next_path: str | None) -> str:
    return SIGNIN + (f"?next={quote(next_path, safe='/')}" if next_path else "")


async def known_principal(request: Request) -> Any:
    """Who is signed in, for the header of an error page: the principal a route's
    dependency found, else the one the session cookie stands for (a page that does
    not exist runs no dependency, yet its page should still carry the navigation)."""
    principal = getattr(request.state, "principal", None)
    session_id = request.cookies.get(SESSION_COOKIE)
    factory = getattr(getattr(request.scope.get("app"), "state", None), "session_factory",
                      None)
    if principal is not None or not session_id or "authorization" in request.headers \
            or factory is None:
        return principal

    def lookup() -> Any:
        with factory() as session:
            return session_principal(session, session_id)

    principal = recent_session(session_id) or await run_in_threadpool(lookup)
    request.state.principal = principal
    return principal


async def _error_page(request: Request, status_code: int, message: str, *,
                      way_on: tuple[str, str] | None = None) -> Response:
    if status_code != 401:
        await known_principal(request)
    return render(request, "error.html", status_code, title="Problem", message=message,
                  status=status_code, way_on=way_on)


async def _http_error_page(request: Request, exc: StarletteHTTPException) -> Response:
    """An HTTP error on a page: sign-in for a session that ended, the form's page for an
    address that only takes a form, else an error page with the way on."""
    path, method = request.url.path, request.method
    if is_script_path(path) and method not in ("GET", "HEAD"):
        # the lease heartbeat (a script's call) shows the reason it was refused
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code)
    if exc.status_code == 401 and method in ("GET", "HEAD"):
        target = quote(path) + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(_signin_link(target), status_code=303)
    if exc.status_code == 401:
        # the form is lost with this answer; signing in again returns to its page,
        # where the lease (if still held) and the answers typed so far are kept
        back = form_page(path)
        return await _error_page(request, 401, "Your session ended before this was "
                                 "saved; sign in again.",
                                 way_on=(_signin_link(back), "Sign in and go back"))
    if exc.status_code == 405 and method in ("GET", "HEAD"):
        back = form_page(path)
        if back is not None:  # a form's address in the address bar: its page
            return RedirectResponse(back, status_code=303)
        return await _error_page(request, 405, "This address only takes a submitted "
                                 "form.")
    message = str(exc.detail)
    if exc.status_code == 403:
        message = message.replace("may not call this endpoint", "may not open this page")
    return await _error_page(request, exc.status_code, message)


def mount(app: FastAPI) -> set[str]:
    """Add the pages to ``app``; returns the page paths that need no token."""
    for module in (routes_review, routes_adjudicate, routes_lead):
        app.include_router(module.router)
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    app.add_middleware(CsrfMiddleware, exempt_paths=frozenset({SIGNIN}))

    app.add_middleware(PageHeadersMiddleware)

    api_hilt_handler: Any = app.exception_handlers.get(HiltError)

    async def hilt_error(request: Request, exc: Exception) -> Response:
        if not _is_page(request) and api_hilt_handler is not None:
            return await api_hilt_handler(request, exc)
        code = next((c for t, c in _STATUS.items() if isinstance(exc, t)), 400)
        return await _error_page(request, code, str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not _is_page(request):
            return await http_exception_handler(request, exc)
        return await _http_error_page(request, exc)

    app.add_exception_handler(HiltError, hilt_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for exc_type, (code, message) in _PAGE_MESSAGES.items():
        app.add_exception_handler(exc_type, _page_aware(
            app.exception_handlers.get(exc_type), code, message))
    app.add_exception_handler(Exception, _unexpected_error)
    return set(PUBLIC)


def _page_aware(api_handler: Any, code: int, message: str) -> Any:
    """A handler answering pages in HTML and everything else as the API did before."""

    async def handler(request: Request, exc: Exception) -> Response:
        if not _is_page(request) and api_handler is not None:
            response: Response = await api_handler(request, exc)
            return response
        if not _is_page(request):
            raise exc
        return await _error_page(request, code, message)

    return handler


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    """Any other error: a 500 page (the exception logged with its traceback) on pages,
    plain text elsewhere as before."""
    if not _is_page(request):
        return PlainTextResponse("Internal Server Error", status_code=500)
    log.error("unexpected error on %s %s", request.method, request.url.path,
              exc_info=exc)
    try:
        response = await _error_page(request, 500, "Something went wrong on our side; "
                                     "the problem was logged. Try again later.")
    except Exception:  # the page itself could not be drawn: plain text, still a 500
        response = PlainTextResponse("Internal Server Error", status_code=500)
    # This answer is sent from outside the page middleware, so it adds the headers itself
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
