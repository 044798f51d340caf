"""Request bodies: the base of every body model, and how a JSON body is read.

FastAPI decodes a body with ``json.loads``, which keeps the last of a repeated key
(``{"verdict": "harmful", "verdict": "safe"}`` would store ``safe`` without a word),
answers a body it cannot decode (compressed, not UTF-8, nested past the interpreter's
recursion limit) with a bare 400, and hands a body sent as ``text/plain``, XML or a form
to the model as raw bytes (a 422 that echoes the body back). So every API body but an
event batch (which :mod:`hilt.api.routers.events` reads itself, after the token check)
is read first by :class:`JsonBodyMiddleware`, with the rules of hilt's JSON files
(:mod:`hilt.jsonl`): a repeated key and nesting past :data:`hilt.jsonl.MAX_DEPTH` are
refused naming the field. What it finds is answered by
:func:`hilt.api.deps.body_checked`, a dependency of every API route, after the token
check: 415 for a body that is not plain JSON, 422 (``{"detail", "error"}``) for one
that cannot be read as JSON. Numbers that are not finite are left to the models, whose
request validation names them (see :func:`hilt.api.app.json_safe`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict
from starlette.datastructures import Headers

from hilt.errors import HiltError, InputError
from hilt.jsonl import (
    TOO_DEEP,
    RepeatedKey,
    field_path,
    repeated_key_path,
    too_deep_field,
    too_deep_path,
    unique_keys,
)
from hilt.web.security import read_body, replay_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestBody(BaseModel):
    """A JSON request body. A field it does not declare is refused (422 naming it), not
    dropped: a misspelt ``time_spent`` for ``time_spent_s``, or ``dryrun`` for
    ``dry_run``, would otherwise be lost and the request carried out without it."""

    model_config = ConfigDict(extra="forbid")


# Where the middleware leaves a body's problem for hilt.api.deps.body_checked.
PROBLEM_KEY = "hilt.body_problem"
# The name errors give the body, as for an event batch (hilt.api.routers.events).
BODY = "request"

_DECODER = json.JSONDecoder(object_pairs_hook=unique_keys)


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or a ``+json`` type, parameters (``charset``) aside."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json"))


def media_type_problem(headers: Headers) -> HTTPException | None:
    """415 for a body that is not plain JSON: compressed (the size limit bounds the bytes
    received, and a few kilobytes of gzip can expand to gigabytes), or sent under
    another Content-Type, none included (a browser may send a cross-site form or
    ``text/plain`` body without asking first; a JSON type it may not)."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        return HTTPException(415, f"Content-Encoding {encoding} is not supported; send "
                                  "the body as plain JSON")
    return content_type_problem(headers.get("content-type"), "the body")


def content_type_problem(content_type: str | None, what: str) -> HTTPException | None:
    """415 unless ``content_type`` is a JSON type; ``what`` names the body."""
    if is_json_media_type(content_type):
        return None
    why = (f"Content-Type {content_type.split(';')[0].strip()!r} is not supported"
           if content_type else "a body needs a Content-Type")
    return HTTPException(415, f"{why}; send {what} as JSON with Content-Type: "
                              "application/json")


def read_json_body(body: bytes) -> Any:
    """The JSON value of ``body``, refusing what ``json.loads`` would read wrongly or
    not at all, with an :class:`InputError` naming the field: text that is not UTF-8
    (a byte-order mark is skipped), nesting past the depth limit, a key repeated in an
    object, and malformed JSON."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start + 1} of the body)",
                         file=BODY) from None
    deep = too_deep_path(text)
    if deep is not None:
        raise InputError(TOO_DEEP, file=BODY, field=too_deep_field(deep) or None)
    try:
        return _DECODER.decode(text)
    except RepeatedKey as exc:
        path = repeated_key_path(text) or (exc.key,)
        raise InputError(f"key {exc.key!r} appears more than once in the object",
                         file=BODY, field=field_path(path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}", file=BODY) from None


def body_problem(headers: Headers, body: bytes) -> HiltError | HTTPException | None:
    """Why ``body`` may not reach a route that takes JSON; None when it may (an empty
    body included: the route's own validation says whether it needs one)."""
    if not body:
        return None
    problem = media_type_problem(headers)
    if problem is not None:
        return problem
    try:
        read_json_body(body)
    except InputError as exc:
        return exc
    return None


class JsonBodyMiddleware:
    """Read the body of each request ``applies(path)`` names and check it
    (:func:`body_problem`). A body that passes goes on to the app unchanged; one that
    does not goes on empty, so that FastAPI does not read it its own way, with the
    problem left in the scope for :func:`hilt.api.deps.body_checked` to answer once the
    token is checked."""

    def __init__(self, app: ASGIApp, applies: Callable[[str], bool]) -> None:
        self.app = app
        self.applies = applies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS") \
                or not self.applies(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        # bounded: hilt.web.security.BodyLimitMiddleware runs outside
        body = await read_body(receive) or b""
        problem = body_problem(Headers(scope=scope), body)
        if problem is not None:
            scope[PROBLEM_KEY] = problem
            body = b""
        await self.app(scope, replay_body(body, receive), send)
