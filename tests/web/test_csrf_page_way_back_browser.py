"""In a browser: sign in, open a task, sign in again in another tab, then send the first
tab's form. It is refused for its CSRF token, and the page leads back to the task,
where the form comes back from the tab's draft and can be sent."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from hilt.store.db import transaction
from hilt.store.tables.review import ReviewRow
from tests.web.conftest import PAGE_TIMEOUT_MS, Site, Tab, add_person, sign_in
from tests.web.seed import add_task, event, publish_harm

pytestmark = pytest.mark.browser


def test_a_form_from_a_tab_older_than_the_sign_in_goes_back_and_is_sent(
        site: Site, tab: Tab) -> None:
    engine = site.engine
    publish_harm(engine)
    token = add_person(engine, "csrf-tab", "reviewer", pools=["csrf-tab"])
    add_task(engine, event("ev-csrf-tab", prompt="p", response="r"), pool="csrf-tab",
             overlap=1)
    page = tab.page
    sign_in(tab, site, token)
    page.keyboard.press("n")
    page.wait_for_url(re.compile(r"/ui/review/tasks/"))
    task_url = page.url.split("?")[0]
    page.keyboard.press("1")  # verdict
    page.keyboard.press("1")  # refusal
    page.keyboard.press("4")  # helpfulness
    page.fill("#rationale", "typed in the first tab")

    other = page.context.new_page()  # the same browser signs in again
    other.set_default_timeout(PAGE_TIMEOUT_MS)
    other.goto(site.url("/ui/signin"))
    other.fill("#token", token)
    with other.expect_navigation():
        other.press("#token", "Enter")
    other.close()

    with page.expect_navigation():
        page.get_by_role("button", name="Submit", exact=True).click()
    main = page.locator("main").inner_text()
    assert "CSRF token" in main and "reload the page" not in main
    tab.shot("csrf-way-back")
    with page.expect_navigation():
        page.get_by_role("link", name="Open the form's page again").click()
    assert page.url == task_url
    # the lease is still held, and the answers come back from this tab's draft
    assert page.is_checked("#q\\.verdict-1") and page.is_checked("#q\\.helpfulness-4")
    assert page.input_value("#rationale") == "typed in the first tab"
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    assert "Review submitted." in page.locator(".flash").inner_text()
    with transaction(engine) as s:
        assert s.execute(sa.select(ReviewRow.rationale).where(
            ReviewRow.reviewer_id == "csrf-tab")).scalar_one() == "typed in the first tab"
