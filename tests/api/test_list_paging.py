"""The capped list endpoints page: each full page names the next one in the
``X-Next-After`` header (the cursor to pass as ``after``) and an RFC 8288
``Link: <URL>; rel="next"`` header, the body staying a plain list. Followed to the end,
the pages hold every row once, in the order of one long page, however many rows share
a sort key; the filters hold on every page; the last page has neither header; a cursor
hilt did not give is a 422 naming ``after``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy.engine import Engine

from hilt.store.keyset import NOT_A_CURSOR
from tests.api.conftest import Api
from tests.api.paging_rows import (
    Listed,
    seed_alerts,
    seed_deliveries,
    seed_jobs,
    seed_pending,
    seed_reviews,
    seed_tokens,
)


@dataclass(frozen=True)
class Endpoint:
    path: str
    role: str
    id_key: str
    seed: Callable[[Engine], Listed]
    most: int  # the largest limit: one page of everything


ENDPOINTS = {
    "jobs": Endpoint("/v1/jobs", "service", "id", seed_jobs, 500),
    "deliveries": Endpoint("/v1/webhooks/deliveries", "lead", "id", seed_deliveries, 1000),
    "alerts": Endpoint("/v1/drift/alerts", "service", "id", seed_alerts, 1000),
    "adjudications": Endpoint("/v1/adjudications", "adjudicator", "task_id", seed_pending,
                              500),
    "reviews": Endpoint("/v1/reviews/mine", "reviewer", "review_id",
                        lambda engine: seed_reviews(engine, "reviewer-1"), 500),
    "tokens": Endpoint("/v1/tokens", "admin", "id", seed_tokens, 1000),
}


def _get(api: Api, ep: Endpoint, url: str) -> httpx.Response:
    response = api.client.get(url, headers=api.headers(ep.role))
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list)  # the body stays a plain list
    return response


def _walk(api: Api, ep: Endpoint, query: dict[str, Any], limit: int
          ) -> list[list[str]]:
    """Every page from the first, following ``Link: rel="next"``; each page's ids."""
    url = str(httpx.URL(ep.path, params={**query, "limit": limit}))
    pages = []
    while True:
        response = _get(api, ep, url)
        pages.append([row[ep.id_key] for row in response.json()])
        following = response.links.get("next")
        if following is None:
            assert "X-Next-After" not in response.headers
            return pages
        assert len(pages[-1]) == limit, "only a full page has a next one"
        assert len(pages) <= 50, "the cursor does not move on"
        url = following["url"]
        sent = parse_qs(urlsplit(url).query)
        assert sent["after"] == [response.headers["X-Next-After"]]
        # the other parameters are kept in the next page's URL
        assert {k: v for k, v in sent.items() if k != "after"} == \
            {k: [str(v)] for k, v in {**query, "limit": limit}.items()}


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_pages_followed_to_the_end_hold_every_row_once_in_order(
        api: Api, engine: Engine, name: str) -> None:
    ep = ENDPOINTS[name]
    listed = ep.seed(engine)
    whole = [row[ep.id_key] for row in _get(api, ep, f"{ep.path}?limit={ep.most}").json()]
    assert whole == listed.ids()  # the order of one long page is the documented one
    assert len(whole) >= 11
    for limit in (1, 2, 3, len(whole) - 1, len(whole)):
        pages = _walk(api, ep, {}, limit)
        assert [i for page in pages for i in page] == whole, limit
        assert all(pages), "no empty page at the end"


@pytest.mark.parametrize(("name", "query"), [
    ("jobs", {"status": "failed"}),
    ("jobs", {"kind": "x.beta", "status": "queued"}),
    ("deliveries", {"status": "pending"}),
    ("deliveries", {"subscription_id": None}),
    ("alerts", {"monitor": "agreement"}),
    ("alerts", {"status": "open", "monitor": "label_shift"}),
])
def test_the_filters_hold_on_every_page(api: Api, engine: Engine, name: str,
                                        query: dict[str, Any]) -> None:
    ep = ENDPOINTS[name]
    listed = ep.seed(engine)
    if "subscription_id" in query:  # the first subscription the seed made
        query = {**query, "subscription_id": listed.rows[0][1]["subscription_id"]}
    expected = listed.ids(**query)
    assert len(expected) >= 3
    for limit in (1, 2):
        assert [i for page in _walk(api, ep, query, limit) for i in page] == expected


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_a_page_that_holds_the_rest_has_no_next_page(api: Api, engine: Engine,
                                                     name: str) -> None:
    ep = ENDPOINTS[name]
    n = len(ep.seed(engine).rows)
    for limit in (n, n + 1):
        response = _get(api, ep, f"{ep.path}?limit={limit}")
        assert len(response.json()) == n
        assert "X-Next-After" not in response.headers and "Link" not in response.headers


# Cursors hilt never gives, for each shape of key: parts missing or empty, a time
# without a zone or out of range, a number that is not one or that no column holds, a
# control character in an id (PostgreSQL refuses NUL).
TIME_ID = ["nonsense", "2030-01-01T12:00:00.000000Z", "2030-01-01T12:00:00~x_1",
           "2030-13-01T00:00:00Z~x_1", "9999-12-31T23:59:59-23:59~x_1",
           "2030-01-01T12:00:00Z~", "2030-01-01T12:00:00Z~a\x00b", "x~x_1"]
BAD = {
    "jobs": TIME_ID,
    "reviews": TIME_ID,
    "deliveries": ["nonsense", "99999999999999999999~x_1", "1.5~x_1", "x~x_1", "5~",
                   "5~a\x00b", "\u0663~x_1", " 5~x_1"],
    "adjudications": ["nonsense", "NaN~x_1", "x~x_1", "1.5~", "1.5~a\x00b"],
    "tokens": TIME_ID,
    "alerts": ["nonsense", "2030-01-01T12:00:00Z~label_shift", "2030-01-01T12:00:00Z~~x_1",
               "x~label_shift~x_1", "2030-01-01T12:00:00~label_shift~x_1",
               "2030-01-01T12:00:00Z~label_shift~"],
}


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_a_cursor_hilt_did_not_give_is_refused_naming_after(api: Api, engine: Engine,
                                                            name: str) -> None:
    ep = ENDPOINTS[name]
    for cursor in BAD[name]:
        response = api.client.get(ep.path, params={"after": cursor},
                                  headers=api.headers(ep.role))
        assert response.status_code == 422, (cursor, response.text)
        error = response.json()["error"]
        assert error["field"] == "after" and error["reason"] == NOT_A_CURSOR, cursor


def test_the_paging_headers_are_in_the_openapi_schema(api: Api) -> None:
    schema = api.client.get("/openapi.json", headers=api.headers("lead")).json()
    for ep in ENDPOINTS.values():
        get = schema["paths"][ep.path]["get"]
        assert "after" in {p["name"] for p in get["parameters"]}
        assert {"X-Next-After", "Link"} <= set(get["responses"]["200"]["headers"])
        assert "X-Next-After" in get["description"]
