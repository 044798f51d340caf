"""Page session, CSRF protection and security headers.

The page session is the ``hilt_token`` cookie, set ``HttpOnly`` and ``SameSite=Strict``
(and ``Secure`` over HTTPS). It holds a random session id opened at sign-in
(:func:`hilt.access.start_session`), never the API token: the server keeps only the id's
sha256, sign-out deletes it, and it expires after :data:`hilt.access.SESSION_LIFETIME`
or when its token is revoked. :func:`hilt.api.deps.allow` accepts a live session id from
the cookie and a token only from the ``Authorization`` header. Because the API accepts
the cookie too, CSRF protection is enforced for *every* cookie-authenticated request
that changes state, pages and API alike, by :class:`CsrfMiddleware`: the request must
carry ``X-CSRF-Token`` (scripts) or a ``csrf_token`` form field (forms) equal to
``HMAC-SHA256(session id, "hilt-csrf")``. The value is derived from the session secret,
so a page on another origin cannot know it, and nothing more has to be stored.
Requests carrying a well-formed ``Authorization: Bearer <token>`` header are not
affected: they are authenticated by that header alone (the browser never adds it on its
own). Any other ``Authorization`` header (another scheme, an empty or malformed Bearer)
does not exempt a cookie request from the check, and :func:`hilt.api.deps.allow` refuses
it with 401 rather than fall back to the cookie.

The sign-in form has no session yet; it uses a double-submit token bound to a random
``hilt_presession`` cookie instead.

:class:`BodyLimitMiddleware` bounds every request body, pages and API alike, before
any of this runs: a body over its path's limit is refused with 413 at once when its
``Content-Length`` says so, else as soon as the bytes received pass the limit; the rest
is never read.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, PlainTextResponse, Response

PAGE_PREFIX = "/ui"  # where the pages live (hilt.web.render.PREFIX)
SESSION_COOKIE = "hilt_token"
PRESESSION_COOKIE = "hilt_presession"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
MAX_FORM_BYTES = 2 * 1024 * 1024  # rubric YAML is the largest form

# Pages may load only their own scripts, styles and images (data: for small icons);
# model output can therefore never fetch anything or run inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def bearer_token(authorization: str | None) -> str | None:
    """The token of a well-formed ``Bearer <token>`` header value, else ``None``."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        return None
    return token


def csrf_token_for(secret: str) -> str:
    """The CSRF token bound to a session (or pre-session) secret."""
    return hmac.new(secret.encode(), b"hilt-csrf", hashlib.sha256).hexdigest()


def csrf_matches(secret: str | None, supplied: str | None) -> bool:
    if not secret or not supplied:
        return False
    return hmac.compare_digest(csrf_token_for(secret), supplied)


def new_presession() -> str:
    return secrets.token_urlsafe(32)


def set_cookie(response: Response, name: str, value: str, *, secure: bool,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", secure=secure,
                        path="/", max_age=max_age)


def is_secure(connection: HTTPConnection) -> bool:
    return connection.url.scheme == "https"


class CsrfMiddleware:
    """Refuse cookie-authenticated state changes that lack the session's CSRF token."""

    def __init__(self, app: ASGIApp, exempt_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.exempt_paths = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS \
                or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        secret = HTTPConnection(scope).cookies.get(SESSION_COOKIE)
        if not secret or bearer_token(headers.get("authorization")) is not None:
            # Not a cookie session (the API takes a Bearer header over the cookie, and
            # any other Authorization header is refused): nothing to forge.
            await self.app(scope, receive, send)
            return
        if csrf_matches(secret, headers.get(CSRF_HEADER)):
            await self.app(scope, receive, send)
            return
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            await _refuse(scope, receive, send, "missing CSRF token")
            return
        body = await read_body(receive, MAX_FORM_BYTES)
        if body is None:
            await _refuse(scope, receive, send,
                          too_large_message(scope.get("path", ""), MAX_FORM_BYTES),
                          status=413)
            return
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        if not csrf_matches(secret, (fields.get(CSRF_FIELD) or [""])[0]):
            await _refuse(scope, receive, send, "missing or wrong CSRF token")
            return
        await self.app(scope, replay_body(body, receive), send)


async def read_body(receive: Receive, limit: int | None = None) -> bytes | None:
    """The request body from the client's messages; None once it passes ``limit``
    bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """``body`` as one message, then the client's own messages (a disconnect): for the
    app behind a middleware that had to read the body first."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# Page addresses that the pages' script calls (not forms): their errors are answered in
# JSON, ``{"detail": …}``, so that the page can show the reason.
_SCRIPT_PATH = re.compile(re.escape(PAGE_PREFIX) + r"/review/tasks/[^/]+/heartbeat")


def is_script_path(path: str) -> bool:
    return _SCRIPT_PATH.fullmatch(path) is not None


async def _refuse(scope: Scope, receive: Receive, send: Send, why: str,
                  status: int = 403) -> None:
    """Answer a refused request: pages get the HTML error page (as every other page
    error does) with a link to the form's page, the pages' script JSON, the API plain
    text."""
    path = scope.get("path", "")
    response: Response
    if is_script_path(path):
        response = JSONResponse({"detail": f"{why}; reload the page and try again"},
                                status_code=status)
    elif path.startswith(PAGE_PREFIX + "/"):
        response = await _refused_form_page(scope, status, why)
    else:
        response = PlainTextResponse(f"{why}; reload the page and try again",
                                     status_code=status)
    await response(scope, receive, send)


async def _refused_form_page(scope: Scope, status: int, why: str) -> Response:
    """A form refused before its handler ran. Reloading this answer would send the same
    form again (the same stale token, the same oversized body), so the page leads to a
    fresh GET of the page the form came from instead, where a new token is issued (and
    the task page refills the form from the draft kept in the tab)."""
    # imported here: the pages import this module for its helpers
    from hilt.web.pages import form_page

    back = form_page(scope.get("path", ""))
    if status == 403:
        message = (f"{why}: the form came from a page opened before your latest sign-in "
                   "(or from another site), so nothing was saved. Open the form's page "
                   "again and send it from there.")
    else:
        message = f"{why}; nothing was saved."
    return await _error_page(scope, status, message,
                             way_on=(back, "Open the form's page again") if back else None)


async def _error_page(scope: Scope, status: int, message: str, *,
                      way_on: tuple[str, str] | None = None) -> Response:
    """The pages' error page, with the navigation of whoever is signed in."""
    # imported here: the pages and the renderer import this module for its helpers
    from starlette.requests import Request

    from hilt.web.pages import known_principal
    from hilt.web.render import render
    request = Request(scope)
    await known_principal(request)
    return render(request, "error.html", status, title="Problem", message=message,
                  status=status, way_on=way_on)


class BodyTooLarge(StarletteHTTPException):
    """A request body over its limit (413), raised while it is being read. An
    ``HTTPException``, so a route that reads the body answers it with the app's own
    handlers (the error page on pages, ``{"detail": …}`` on the API)."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__(413, too_large_message(path, limit))


def too_large_message(path: str, limit: int) -> str:
    mib = 1024 * 1024
    size = f"{limit // mib} MiB" if limit % mib == 0 else f"{limit:,} bytes"
    what = "form" if _is_page_path(path) else "request body"
    return f"{what} too large: at most {size} here"


def _is_page_path(path: str) -> bool:
    return path == PAGE_PREFIX or path.startswith(PAGE_PREFIX + "/")


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit_for(path)`` bytes with 413, before the app
    reads them: at once when ``Content-Length`` exceeds the limit (the app never runs),
    else while the body streams in, as soon as the bytes received pass it. Either way
    the rest of the body is never read, so a client cannot make the server hold more
    than the limit in memory."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.limit_for(path)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.strip().isdigit() \
                and int(declared) > limit:
            await _too_large(scope, receive, send, limit)
            return
        received = 0
        exceeded = started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(path, limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if exceeded:  # the rest of the body stays unread: end the connection
                    MutableHeaders(scope=message)["connection"] = "close"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:
            # Raised outside the routes (a middleware reading the body): answered here
            # unless a response has begun.
            if started:
                raise
            await _too_large(scope, receive, send, limit)


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    path = scope.get("path", "")
    message = too_large_message(path, limit)
    response: Response
    if _is_page_path(path):
        response = await _refused_form_page(scope, 413, message)
        for name, value in PAGE_HEADERS.items():
            response.headers.setdefault(name, value)
    else:
        response = JSONResponse({"detail": message}, status_code=413)
    # The body is left unread: the server closes the connection after answering.
    response.headers["connection"] = "close"
    await response(scope, receive, send)
