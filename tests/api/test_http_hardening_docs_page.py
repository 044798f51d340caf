"""``/docs`` is a page of hilt's own: no script, nothing from another origin, and the
pages' Content-Security-Policy."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.web.security import CONTENT_SECURITY_POLICY
from tests.api.conftest import Api
from tests.web.asgi import sign_in


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    return sqlite_engine


def _assert_self_contained(html: str) -> None:
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I), html
    assert "cdn" not in html.lower()


def test_docs_page_loads_nothing_from_elsewhere(api: Api) -> None:
    page = api.client.get("/docs", headers=api.headers("reviewer"))
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["x-frame-options"] == "DENY"
    _assert_self_contained(page.text)
    assert "/openapi.json" in page.text
    assert "<code>/v1/events</code>" in page.text  # the endpoints are listed
    assert "service, lead, admin" in page.text or "admin, lead, service" in page.text


def test_docs_page_opened_with_a_page_session_is_the_same_page(api: Api) -> None:
    client = TestClient(api.client.app)
    sign_in(client, api.tokens["reviewer"])
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    _assert_self_contained(page.text)


def test_docs_page_needs_a_token(api: Api) -> None:
    assert api.client.get("/docs").status_code == 401
