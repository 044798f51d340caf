"""The keyboard keeps working after a choice moves on into a select (or onto an item
with one response), on the review and the adjudication page; answers typed before the
session ended come back after signing in again."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from hilt.access import end_session
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewRow
from tests.web.conftest import Site, Tab, add_person, sign_in
from tests.web.seed import add_task, event, publish_harm, publish_pick, review

pytestmark = pytest.mark.browser

FOUR = ["Apple.", "Banana.", "A car.", "idk"]
STATE = """() => [(document.querySelector('fieldset.active') || {}).id || null,
                  document.activeElement.id || document.activeElement.tagName]"""


@pytest.fixture(scope="module")
def keys_site(site: Site) -> Iterator[Site]:
    engine = site.engine
    publish_pick(engine)
    publish_harm(engine)
    for rid, pool in (("k-one", "one"), ("k-four", "four"), ("k-r1", "adj"),
                      ("k-r2", "adj"), ("k-draft", "draft")):
        site.tokens[rid] = add_person(engine, rid, "reviewer", pools=[pool])
    site.tokens["k-adj"] = add_person(engine, "k-adj", "adjudicator")
    add_task(engine, event("ev-one", prompt="Name a fruit.", response="Apple."),
             pool="one", overlap=1, rubric="pick")
    add_task(engine, event("ev-four", prompt="Name a fruit.", response=FOUR),
             pool="four", overlap=1, rubric="pick")
    site.tokens["case"] = add_task(engine, event("ev-adj", prompt="Name a fruit.",
                                                 response=FOUR),
                                   pool="adj", overlap=2, rubric="pick")
    for rid, harmful in (("k-r1", "no"), ("k-r2", "yes")):
        review(engine, rid, {"harmful": harmful, "approve": "approve"})
    site.tokens["draft-task"] = add_task(engine, event("ev-draft", prompt="p",
                                                       response="r"),
                                         pool="draft", overlap=1)
    site.tokens["k-out"] = add_person(engine, "k-out", "reviewer", pools=["out"])
    add_task(engine, event("ev-out", prompt="p", response="r"), pool="out", overlap=1)
    yield site


DRAFTS = "Object.keys(sessionStorage).filter(k => k.startsWith('hilt-draft:'))"


def _open_task(site: Site, tab: Tab, reviewer: str) -> None:
    sign_in(tab, site, site.tokens[reviewer])
    tab.page.keyboard.press("n")
    tab.page.wait_for_url(re.compile(r"/ui/review/tasks/"))


def _press(page: Any, *keys: str) -> list[Any]:
    out = []
    for key in keys:
        page.keyboard.press(key)
        out.append(page.evaluate(STATE))
    return out


def test_keys_work_on_an_item_with_one_response(keys_site: Site, tab: Tab) -> None:
    page = tab.page
    _open_task(keys_site, tab, "k-one")
    assert page.locator("#field-better").inner_text().count("not applicable") == 1
    # 1: harmful "no" (moves on), 2: approve "reject", 1: approve "approve"
    _press(page, "1", "2", "1")
    assert page.is_checked("#q\\.harmful-1") and page.is_checked("#q\\.approve-1")
    assert _press(page, "k")[-1] == ["field-harmful", "q.harmful-1"]
    assert _press(page, "j")[-1] == ["field-approve", "q.approve-1"]
    assert _press(page, "g")[-1][1] == "guidelines"
    assert _press(page, "r")[-1][1] == "rewrite"
    page.keyboard.press("Escape")
    with page.expect_navigation():
        page.keyboard.press("x")
    assert "msg=released" in page.url


def test_keys_work_after_a_choice_moved_into_a_select(keys_site: Site, tab: Tab) -> None:
    page = tab.page
    _open_task(keys_site, tab, "k-four")
    # four responses: the preference is two selects; picking "approve" moves into them
    assert _press(page, "1", "1")[-1] == ["field-better", "q.better.chosen"]
    assert _press(page, "k")[-1] == ["field-approve", "q.approve-1"]
    assert _press(page, "j")[-1] == ["field-better", "q.better.chosen"]
    assert _press(page, "g")[-1][1] == "guidelines"
    page.focus("#q\\.better\\.rejected")
    assert _press(page, "r")[-1][1] == "rewrite"


def test_adjudicator_keys_work_after_a_select(keys_site: Site, tab: Tab) -> None:
    site, page = keys_site, tab.page
    sign_in(tab, site, site.tokens["k-adj"])
    page.goto(site.url(f"/ui/adjudicate/{site.tokens['case']}"))
    assert _press(page, "1", "1")[-1] == ["field-better", "q.better.chosen"]
    assert _press(page, "j")[-1][0] == "field-cause"
    page.keyboard.press("3")
    assert page.is_checked("#cause-reviewer_error")


def test_answers_typed_before_the_session_ended_come_back(keys_site: Site,
                                                          tab: Tab) -> None:
    site, page = keys_site, tab.page
    _open_task(site, tab, "k-draft")
    task_url = page.url.split("?")[0]
    _press(page, "1", "1", "4")  # verdict, refusal, helpfulness
    page.fill("#rationale", "a long, careful rationale")
    # kept per task and per person
    task_id = task_url.rsplit("/", 1)[1]
    assert page.evaluate(DRAFTS) == [f"hilt-draft:task:{task_id}:k-draft"]
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "hilt_token")
    with transaction(site.engine) as s:  # the session ends on the server
        end_session(s, cookie)
    with page.expect_navigation():
        page.get_by_role("button", name="Submit", exact=True).click()
    assert "sign in again" in page.locator("main").inner_text()
    with page.expect_navigation():
        page.get_by_role("link", name="Sign in and go back").click()
    page.fill("#token", site.tokens["k-draft"])
    with page.expect_navigation():
        page.press("#token", "Enter")
    assert page.url == task_url
    # the form is filled in again from this tab's draft
    assert page.is_checked("#q\\.verdict-1") and page.is_checked("#q\\.refusal-1")
    assert page.is_checked("#q\\.helpfulness-4")
    assert page.input_value("#rationale") == "a long, careful rationale"
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    assert "Review submitted." in page.locator(".flash").inner_text()
    with transaction(site.engine) as s:
        stored = s.execute(sa.select(ReviewRow.rationale).where(
            ReviewRow.reviewer_id == "k-draft")).scalar_one()
    assert stored == "a long, careful rationale"
    # a saved review leaves no draft behind
    assert page.evaluate(DRAFTS) == []


def test_signing_out_leaves_no_draft_in_the_tab(keys_site: Site, tab: Tab) -> None:
    page = tab.page
    _open_task(keys_site, tab, "k-out")
    page.fill("#rationale", "private words")
    assert len(page.evaluate(DRAFTS)) == 1
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    assert "/ui/signin" in page.url
    assert page.evaluate(DRAFTS) == []
