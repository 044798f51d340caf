"""Request pieces shared by the page routers."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import HTTPException, Request
from sqlalchemy.engine import Engine

from hilt.web.forms import FormData
from hilt.web.security import MAX_FORM_BYTES

PEOPLE = ("reviewer", "adjudicator", "lead")


async def form_data(request: Request) -> FormData:
    """The submitted form. Pages only post URL-encoded forms (no uploads), so they are
    parsed here directly; an async dependency, so handlers can stay synchronous."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise HTTPException(415, "pages accept URL-encoded forms only")
    # hilt.web.security.BodyLimitMiddleware has bounded the body while it streamed in;
    # this check holds for an app assembled without it.
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    return FormData(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine
