"""Lists on the pages that show a page of their rows say so and lead to the rest: My
queue's own reviews and the disagreements page on with the keyset cursors the HTTP API
uses, in the API's order, each row once."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.web import routes_adjudicate
from tests.web.asgi import sign_in
from tests.web.conftest import add_person
from tests.web.seed import add_task, event, publish_harm, review

ANSWERS = {"verdict": "safe", "refusal": "complies", "helpfulness": 4}


def _text(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">(.*?)</p>', page, re.S)
    assert found, page[:1000]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def _link(page: str, label: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)"[^>]*>{label}</a>', page)
    return html.unescape(found.group(1)) if found else None


def _walk(client: TestClient, first: str, row: str, more: str
          ) -> tuple[list[list[str]], list[str]]:
    """The rows (by ``row`` pattern) of each page from ``first`` on, following the
    ``more`` link, and each page's text."""
    pages, texts, url = [], [], first
    while url is not None:
        page = client.get(url)
        assert page.status_code == 200, page.text[:500]
        pages.append(re.findall(row, page.text))
        texts.append(page.text)
        url = _link(page.text, more)
        assert len(pages) < 10, "the pages do not end"
    return pages, texts


def test_my_reviews_past_the_first_twenty_are_a_link_away(client: TestClient,
                                                          engine: Engine) -> None:
    publish_harm(engine)
    token = add_person(engine, "rev-many", "reviewer", pools=["many"])
    for i in range(21):
        add_task(engine, event(f"ev-many-{i}", prompt="p", response="r"), pool="many",
                 overlap=1)
        review(engine, "rev-many", ANSWERS)
    sign_in(client, token)
    api = [r["task_id"] for r in client.get("/v1/reviews/mine?limit=100").json()]
    assert len(api) == 21
    pages, texts = _walk(client, "/ui/review", r"<td><code>([^<]+)</code></td>",
                         "Older reviews")
    assert [len(p) for p in pages] == [20, 1]
    assert [t for p in pages for t in p] == api  # each once, in the API's order
    assert "Showing your 20 newest reviews" in _text(texts[0], "history-shown")
    assert "after those on the earlier pages" in _text(texts[1], "history-shown")
    assert _link(texts[1], "Back to the newest") == "/ui/review"


def test_disagreements_past_a_page_are_a_link_away(client: TestClient, engine: Engine,
                                                   monkeypatch: pytest.MonkeyPatch
                                                   ) -> None:
    monkeypatch.setattr(routes_adjudicate, "PENDING_PAGE", 2)
    publish_harm(engine)
    for rid in ("rd-1", "rd-2"):
        add_person(engine, rid, "reviewer", pools=["split"])
    for i in range(5):
        add_task(engine, event(f"ev-split-{i}", prompt="p", response="r"), pool="split",
                 overlap=2)
        for rid, verdict in (("rd-1", "safe"), ("rd-2", "harmful")):
            review(engine, rid, {**ANSWERS, "verdict": verdict})
    sign_in(client, add_person(engine, "adj-1", "adjudicator"))
    api = [r["task_id"] for r in client.get("/v1/adjudications?limit=100").json()]
    assert len(api) == 5
    pages, texts = _walk(client, "/ui/adjudicate",
                         r'<td><a href="/ui/adjudicate/([^"]+)">', "Next disagreements")
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [t for p in pages for t in p] == api
    assert _text(texts[0], "pending-shown") == "Showing the 2 most urgent of the 5 waiting."
    assert _text(texts[1], "pending-shown") == ("Showing 2 more of the 5 waiting, after "
                                                "those on the earlier pages.")
    assert _link(texts[0], "Back to the most urgent") is None
    assert _link(texts[2], "Back to the most urgent") == "/ui/adjudicate"


def test_a_short_list_says_it_is_whole(client: TestClient, engine: Engine) -> None:
    publish_harm(engine)
    add_task(engine, event("ev-one", prompt="p", response="r"), pool="one", overlap=1)
    token = add_person(engine, "rev-one", "reviewer", pools=["one"])
    review(engine, "rev-one", ANSWERS)
    sign_in(client, token)
    page = client.get("/ui/review").text
    assert _text(page, "history-shown") == "All your reviews, newest first."
    assert _link(page, "Older reviews") is None and 'class="pager"' not in page


def test_a_cursor_the_pages_did_not_give_is_refused_naming_it(client: TestClient,
                                                             engine: Engine) -> None:
    sign_in(client, add_person(engine, "adj-1", "adjudicator"))
    for url in ("/ui/adjudicate?after=nonsense", "/ui/review?after=nonsense"):
        page = client.get(url)
        assert page.status_code == 422, (url, page.text[:300])
        assert "not a cursor" in page.text and "after" in page.text
