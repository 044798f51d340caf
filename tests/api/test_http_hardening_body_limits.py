"""Request bodies over their path's limit are refused with 413 before they are read:
at once on ``Content-Length``, else as soon as the streamed bytes pass the limit; the
event ingest checks the token before it reads a byte."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token
from hilt.api.app import MAX_API_BODY_BYTES, body_limit, create_app
from hilt.api.routers.events import MAX_BODY_BYTES as MAX_EVENTS_BODY_BYTES
from hilt.store.db import transaction
from hilt.web.security import MAX_FORM_BYTES

CHUNK = 256 * 1024
FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    # The limits do not depend on the database: SQLite only.
    return sqlite_engine


@dataclass
class Upload:
    status: int
    text: str
    headers: httpx.Headers
    pulled: int  # bytes the server took from the client


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    return create_app(engine)


@pytest.fixture
def tokens(engine: Engine) -> dict[str, str]:
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="rev-1", role="reviewer")
        return {"service": create_token(s, role="service")[1],
                "reviewer": create_token(s, role="reviewer", reviewer_id="rev-1")[1]}


def upload(app: FastAPI, path: str, total: int, headers: dict[str, str]) -> Upload:
    """POST ``total`` bytes to ``path`` as a stream of chunks (no Content-Length unless
    ``headers`` gives one), counting how many of them the server read."""
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for start in range(0, total, CHUNK):
            piece = b"a" * min(CHUNK, total - start)
            pulled += len(piece)
            yield piece

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://127.0.0.1") as client:
            return await client.post(path, content=body(), headers=headers)

    response = asyncio.run(send())
    return Upload(response.status_code, response.text, response.headers, pulled)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_each_path_family_has_its_limit() -> None:
    assert body_limit("/v1/events") == MAX_EVENTS_BODY_BYTES
    assert body_limit("/ui/signin") == body_limit("/ui/lead/rubrics") == MAX_FORM_BYTES
    assert body_limit("/v1/rubrics") == body_limit("/v1/queue/tasks/t/submit") \
        == MAX_API_BODY_BYTES
    assert MAX_FORM_BYTES < MAX_API_BODY_BYTES < MAX_EVENTS_BODY_BYTES


def test_signin_form_over_the_limit_is_refused_while_it_streams(app: FastAPI) -> None:
    total = MAX_FORM_BYTES + 8 * 1024 * 1024
    out = upload(app, "/ui/signin", total, FORM)
    assert out.status == 413
    assert "form too large" in out.text and out.headers["content-type"].startswith(
        "text/html")
    assert out.pulled <= MAX_FORM_BYTES + CHUNK < total
    assert out.headers["connection"] == "close"


def test_signin_form_declared_over_the_limit_is_refused_unread(app: FastAPI) -> None:
    total = MAX_FORM_BYTES + 1
    out = upload(app, "/ui/signin", total, {**FORM, "content-length": str(total)})
    assert out.status == 413 and "form too large" in out.text
    assert out.pulled == 0
    assert out.headers["x-frame-options"] == "DENY"  # still a page, with its headers


def test_event_batch_over_the_limit_is_refused_while_it_streams(
        app: FastAPI, tokens: dict[str, str]) -> None:
    total = MAX_EVENTS_BODY_BYTES + 8 * 1024 * 1024
    out = upload(app, "/v1/events", total, {**JSON, **bearer(tokens["service"])})
    assert out.status == 413
    assert out.text == ('{"detail":"request body too large: at most '
                        f'{MAX_EVENTS_BODY_BYTES // 2**20} MiB here"}}')
    assert out.pulled <= MAX_EVENTS_BODY_BYTES + CHUNK < total


def test_event_batch_declared_over_the_limit_is_refused_unread(
        app: FastAPI, tokens: dict[str, str]) -> None:
    total = MAX_EVENTS_BODY_BYTES + 1
    out = upload(app, "/v1/events", total,
                 {**JSON, **bearer(tokens["service"]), "content-length": str(total)})
    assert out.status == 413 and out.pulled == 0


def test_event_ingest_checks_the_token_before_reading_the_body(
        app: FastAPI, tokens: dict[str, str]) -> None:
    anonymous = upload(app, "/v1/events", 4 * CHUNK, JSON)
    assert anonymous.status == 401 and anonymous.pulled == 0
    reviewer = upload(app, "/v1/events", 4 * CHUNK, {**JSON, **bearer(tokens["reviewer"])})
    assert reviewer.status == 403 and reviewer.pulled == 0


def test_other_api_bodies_have_the_smaller_limit(app: FastAPI,
                                                 tokens: dict[str, str]) -> None:
    total = MAX_API_BODY_BYTES + 4 * 1024 * 1024
    out = upload(app, "/v1/rubrics", total, {**JSON, **bearer(tokens["service"])})
    assert out.status == 413 and out.pulled <= MAX_API_BODY_BYTES + CHUNK


def test_a_batch_within_the_limit_is_still_ingested(app: FastAPI,
                                                    tokens: dict[str, str]) -> None:
    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://127.0.0.1") as client:
            return await client.post("/v1/events", headers=bearer(tokens["service"]),
                                     json={"events": [{
                                         "interaction": {"prompt": "hi"},
                                         "responses": [{"text": "hello"}],
                                         "context": {"consent": ["train"]}}]})

    response = asyncio.run(send())
    assert response.status_code == 200, response.text
    assert response.json()["new"] == 1
