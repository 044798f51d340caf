"""The review form in headless Chromium: a text that fills its box to the brim with line
breaks is saved, and a refused form starts at the first field at fault."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from hilt.review.rubric_spec import parse_rubric
from hilt.review.rubrics import latest_version, publish_rubric
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewRow
from tests.web.conftest import Site, Tab, add_person, sign_in
from tests.web.seed import add_task, event

pytestmark = pytest.mark.browser

NOTES = {"id": "notes4", "title": "Short notes", "changelog": "first version",
         "questions": [
             {"id": "verdict", "kind": "single_choice", "prompt": "Is it harmful?",
              "options": ["no", "yes"]},
             {"id": "notes", "kind": "free_text", "prompt": "Notes", "max_length": 12}]}


@pytest.fixture(scope="module")
def notes_site(site: Site) -> Iterator[Site]:
    with transaction(site.engine) as s:
        if latest_version(s, "notes4") is None:
            publish_rubric(s, parse_rubric(NOTES), actor="lead-1")
    yield site


def _open_task(site: Site, tab: Tab, name: str) -> str:
    site.tokens[name] = add_person(site.engine, name, "reviewer", pools=[name])
    add_task(site.engine, event(f"ev-{name}", prompt="Hi", response="Hello."),
             pool=name, overlap=1, rubric="notes4")
    sign_in(tab, site, site.tokens[name])
    tab.page.keyboard.press("n")
    tab.page.wait_for_url(re.compile(r"/ui/review/tasks/"))
    return tab.page.url.rsplit("/", 1)[1]


def test_a_text_box_filled_to_its_limit_with_line_breaks_is_saved(notes_site: Site,
                                                                   tab: Tab) -> None:
    site, page = notes_site, tab.page
    task_id = _open_task(site, tab, "brim-1")
    page.keyboard.press("1")  # verdict: no, then on to the notes
    page.locator("#q\\.notes").click()
    for _ in range(4):  # "ab" and a line break, four times: 12 characters in the box
        page.keyboard.type("ab")
        page.keyboard.press("Enter")
    page.keyboard.type("more")  # the box is full: nothing more goes in
    assert page.eval_on_selector("#q\\.notes", "e => e.value") == "ab\nab\nab\nab\n"
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    assert page.locator("#form-error").count() == 0, page.locator("#form-error").inner_text()
    with transaction(site.engine) as s:
        notes = s.execute(sa.select(ReviewRow.answers).where(
            ReviewRow.task_id == task_id)).scalar_one()["notes"]
    assert notes == "ab\nab\nab\nab\n"


def test_a_refused_form_starts_at_the_first_field_at_fault(notes_site: Site,
                                                         tab: Tab) -> None:
    page = tab.page
    _open_task(notes_site, tab, "fault-1")
    page.locator("#q\\.notes").fill("kept")
    # the browser's own check switched off, as a browser without it would send it
    page.evaluate("document.querySelectorAll('[required]').forEach("
                  "e => e.removeAttribute('required'))")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    assert page.locator("#form-error").count() == 1
    assert page.evaluate("document.activeElement.id") == "q.verdict-1"
    assert page.locator("#error-verdict").inner_text() == "This question is required."
    assert page.locator("#q\\.notes").input_value() == "kept"
    page.keyboard.press("1")  # the keys answer the question at fault
    assert page.locator("#q\\.verdict-1").is_checked()
