"""No page is wider than the window, on a phone (390 px) or a desktop (1280 px): long
words (URLs, hashes, text without spaces) wrap, code blocks and wide tables scroll inside
their own box."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from hilt.gate.store import store_decision
from hilt.review.adjudication import adjudicate
from hilt.store.db import transaction
from tests.gate.tiny_check import tiny_record
from tests.web.conftest import ARTIFACTS, PAGE_TIMEOUT_MS, Site, add_person
from tests.web.seed import (
    add_drift_alert,
    add_model,
    add_task,
    event,
    publish_harm,
    review,
)

pytestmark = pytest.mark.browser

URL = "https://example.com/" + "a" * 150  # 170 characters
WORD = "b" * 180
CODE = "```\n" + "x" * 200 + "\n```"
LONG = f"See {URL} and {WORD}\n\n{CODE}\n\nthe end"
WIDTH = "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"


@pytest.fixture(scope="module")
def layout_site(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    engine = site.engine
    publish_harm(engine)
    site.tokens["rev"] = add_person(engine, "lay-rev", "reviewer", pools=["lay"])
    site.tokens["lead"] = add_person(engine, "lay-lead", "lead")
    for rid in ("lay-r1", "lay-r2"):
        add_person(engine, rid, "reviewer", pools=["dis"])
    add_person(engine, "lay-adj", "adjudicator")
    # the reviewer's history, then the task with long words they open next
    add_task(engine, event("ev-hist", prompt="short", response="ok"), pool="lay", overlap=1)
    review(engine, "lay-rev", {"verdict": "safe", "refusal": "complies",
                               "helpfulness": 4, "notes": WORD}, rationale=LONG)
    add_task(engine, event("ev-long", messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": f"How do I do this? Here is a link {URL}"},
        {"role": "assistant", "content": "Why do you ask?"},
        {"role": "user", "content": f"For a **school** project. `code` and\n\n{CODE}"}],
        response=f"I can't help with that. {WORD}"), pool="lay", overlap=1)
    # two disagreements: one waiting, one decided
    cases = []
    for name in ("open", "decided"):
        cases.append(add_task(engine, event(f"ev-{name}", prompt=LONG, response=LONG),
                              pool="dis", overlap=2))
        for rid, verdict in (("lay-r1", "safe"), ("lay-r2", "harmful")):
            review(engine, rid, {"verdict": verdict, "refusal": "complies",
                                 "helpfulness": 3}, rationale=LONG)
    with transaction(engine) as s:
        adjudicate(s, cases[1], "lay-adj", answers={"verdict": "borderline"},
                   rationale=LONG, cause="guideline_gap")
    site.tokens["open"], site.tokens["decided"] = cases
    add_drift_alert(engine)
    add_model(engine)
    folder = tmp_path_factory.mktemp("gate-" + "long-folder-name" * 4)
    with transaction(engine) as s:
        site.tokens["gate"] = store_decision(
            s, tiny_record(folder, [{"role": "release_owner"}]), actor="ci").hash
    yield site


def _context(browser: Any, width: int) -> Any:
    return browser.new_context(viewport={"width": width, "height": 844})


def _sign_in(page: Any, site: Site, token: str) -> None:
    page.goto(site.url("/ui/signin"))
    page.fill("#token", token)
    with page.expect_navigation():
        page.press("#token", "Enter")


def _fits(page: Any, name: str, width: int) -> tuple[str, int, int]:
    scroll, client = page.evaluate(WIDTH)
    if scroll > client:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"wide-{width}-{name}.png"), full_page=True)
    return name, scroll, client


@pytest.mark.parametrize("width", [390, 1280])
def test_the_reviewer_pages_fit_the_window(layout_site: Site, browser: Any,
                                           width: int) -> None:
    site = layout_site
    context = _context(browser, width)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page.goto(site.url("/ui/signin"))
        results = [_fits(page, "signin", width)]
        _sign_in(page, site, site.tokens["rev"])
        results.append(_fits(page, "queue", width))
        with page.expect_navigation():
            page.get_by_role("button", name=re.compile("Next task")).click()
        assert "/ui/review/tasks/" in page.url
        assert URL in page.locator("main").inner_text()
        results.append(_fits(page, "task", width))
        # the code block keeps its long line and scrolls inside its box
        code = page.locator(".md pre").first
        inner, box = code.evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert inner > box
    finally:
        context.close()
    assert [r for r in results if r[1] > r[2]] == [], results


@pytest.mark.parametrize("width", [390, 1280])
def test_the_lead_and_adjudicator_pages_fit_the_window(layout_site: Site, browser: Any,
                                                       width: int) -> None:
    site = layout_site
    context = _context(browser, width)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    results = []
    try:
        _sign_in(page, site, site.tokens["lead"])
        for name, path in (
                ("queue", "/ui/review"), ("disagreements", "/ui/adjudicate"),
                ("case", f"/ui/adjudicate/{site.tokens['open']}"),
                ("decided-case", f"/ui/adjudicate/{site.tokens['decided']}"),
                ("dashboard", "/ui/lead"), ("gate", f"/ui/lead/gate/{site.tokens['gate']}"),
                ("rubrics", "/ui/lead/rubrics"), ("rubric-harm", "/ui/lead/rubrics?id=harm"),
                ("not-found", "/ui/" + "no-such-page-" * 12)):
            page.goto(site.url(path))
            results.append(_fits(page, name, width))
        page.goto(site.url("/ui/lead/rubrics?id=harm"))
        with page.expect_navigation():
            page.get_by_role("button", name="Preview").click()
        results.append(_fits(page, "rubric-preview", width))
    finally:
        context.close()
    assert [r for r in results if r[1] > r[2]] == [], results
    assert len(results) == 10


def test_long_words_wrap_in_the_decided_case(layout_site: Site, browser: Any) -> None:
    """The decision's rationale wraps inside the page on a phone."""
    site = layout_site
    context = _context(browser, 390)
    page = context.new_page()
    try:
        _sign_in(page, site, site.tokens["lead"])
        page.goto(site.url(f"/ui/adjudicate/{site.tokens['decided']}"))
        decision = page.locator("section.decided .md").first
        assert WORD in decision.inner_text()
        right = decision.evaluate("e => e.getBoundingClientRect().right")
        scroll, client = page.evaluate(WIDTH)
    finally:
        context.close()
    assert right <= client and scroll <= client
