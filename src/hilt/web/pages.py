"""Mount the pages on the HTTP application.

``mount(app)`` adds the page routers under ``/ui``, the packaged static files, the CSRF
middleware (for every cookie-authenticated state change, see :mod:`hilt.web.security`),
security headers on pages, and error handling that answers pages in HTML: a page that
needs a session redirects to the sign-in page, other errors show a readable page. It
returns the paths that answer without a token: the sign-in page and ``/`` (a redirect).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from hilt.errors import Conflict, Forbidden, HiltError, InputError, NotFound
from hilt.web import routes_adjudicate, routes_lead, routes_review
from hilt.web.render import PREFIX, STATIC_DIR, render
from hilt.web.security import PAGE_HEADERS, CsrfMiddleware

SIGNIN = PREFIX + "/signin"
PUBLIC = frozenset({"/", SIGNIN})
_STATUS = {InputError: 422, NotFound: 404, Conflict: 409, Forbidden: 403}


def _is_page(request: Request) -> bool:
    path = request.url.path
    return path == PREFIX or path.startswith(PREFIX + "/")


def _error_page(request: Request, status_code: int, message: str) -> Response:
    return render(request, "error.html", status_code, title="Problem", message=message,
                  status=status_code)


def mount(app: FastAPI) -> set[str]:
    """Add the pages to ``app``; returns the page paths that need no token."""
    for module in (routes_review, routes_adjudicate, routes_lead):
        app.include_router(module.router)
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    app.add_middleware(CsrfMiddleware, exempt_paths=frozenset({SIGNIN}))

    @app.middleware("http")
    async def page_headers(request: Request,
                           call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if _is_page(request) or request.url.path == "/":
            for name, value in PAGE_HEADERS.items():
                if name == "Cache-Control" and request.url.path.startswith(
                        PREFIX + "/static/"):
                    continue
                response.headers.setdefault(name, value)
        return response

    api_hilt_handler: Any = app.exception_handlers.get(HiltError)

    async def hilt_error(request: Request, exc: Exception) -> Response:
        if not _is_page(request) and api_hilt_handler is not None:
            return await api_hilt_handler(request, exc)
        code = next((c for t, c in _STATUS.items() if isinstance(exc, t)), 400)
        return _error_page(request, code, str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not _is_page(request):
            return await http_exception_handler(request, exc)
        if exc.status_code == 401 and request.method == "GET":
            return RedirectResponse(f"{SIGNIN}?next={quote(request.url.path)}",
                                    status_code=303)
        if exc.status_code == 401:
            return _error_page(request, 401, "Your session ended; sign in again.")
        return _error_page(request, exc.status_code, str(exc.detail))

    app.add_exception_handler(HiltError, hilt_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    return set(PUBLIC)
