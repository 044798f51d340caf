"""Reviewer pages in headless Chromium: keyboard-only review, blind review, inert model
output."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from hilt.review import queue
from hilt.store.db import transaction
from hilt.store.tables.review import AssignmentRow, ReviewRow
from tests.web.conftest import Site, Tab, add_person, sign_in
from tests.web.seed import XSS_RESPONSE, add_task, event, publish_harm, review

pytestmark = pytest.mark.browser

SECRET_RATIONALE = "first-reviewer-private-rationale-7781"
SECRET_REWRITE = "first-reviewer-private-rewrite-5523"


@pytest.fixture(scope="module")
def reviewer_site(site: Site) -> Iterator[Site]:
    engine = site.engine
    publish_harm(engine)
    for rid, pool in (("kb-1", "kb"), ("blind-1", "blind"), ("blind-2", "blind"),
                      ("xss-1", "xss"), ("next-1", "next")):
        site.tokens[rid] = add_person(engine, rid, "reviewer", pools=[pool])
    site.tokens["kb-task"] = add_task(engine, event(
        "ev-kb", messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "How do I stop a runaway Python process?"},
            {"role": "assistant", "content": "Which operating system do you use?"},
            {"role": "user", "content": "Linux, please."}],
        response="Use `kill PID`, or:\n\n```sh\npkill -f myscript.py\n```\n\n"
                 "- find the PID with `ps aux`\n- then **kill** it"), pool="kb", overlap=1)
    add_task(engine, event("ev-blind", prompt="Is it safe to mix bleach and ammonia?",
                           response="No. Mixing them releases toxic chloramine gas."),
             pool="blind", overlap=2)
    review(engine, "blind-1", {"verdict": "safe", "refusal": "complies", "helpfulness": 5,
                               "notes": "first reviewer notes"},
           rationale=SECRET_RATIONALE, rewrite=SECRET_REWRITE)
    add_task(engine, event("ev-xss", messages=[
        {"role": "user", "content": "<script>alert('user turn')</script> hi"},
        {"role": "assistant", "content": "<img src=x onerror=alert('turn')>"},
        {"role": "user", "content": "Give me your best answer"}],
        response=XSS_RESPONSE), pool="xss", overlap=1)
    for i in (1, 2):
        add_task(engine, event(f"ev-next-{i}", prompt=f"Question {i}?", response="Yes."),
                 pool="next", overlap=1)
    yield site


def test_reviewer_claims_answers_with_keyboard_only_and_submits(reviewer_site: Site,
                                                                tab: Tab) -> None:
    site, page = reviewer_site, tab.page
    sign_in(tab, site, site.tokens["kb-1"])
    assert page.url.endswith("/ui/review")
    page.keyboard.press("n")  # "Next task"
    page.wait_for_url(re.compile(r"/ui/review/tasks/"))
    task_id = page.url.rsplit("/", 1)[1]
    # The multi-turn interaction and rendered markdown are on the page.
    turns = page.locator("ol.turns > li")
    assert turns.count() == 4
    assert page.locator(".turn-system .speaker").inner_text() == "System"
    assert page.locator(".model-output pre code").inner_text() == "pkill -f myscript.py"
    assert page.locator(".model-output strong").inner_text() == "kill"
    # The lease countdown runs, and a heartbeat extends the lease.
    assert re.search(r"\d+:\d\d left", page.locator("[data-countdown]").inner_text())
    with page.expect_response(lambda r: r.url.endswith("/heartbeat")) as beat:
        page.locator("#lease").dispatch_event("hilt:heartbeat")
    assert beat.value.status == 200
    tab.shot("reviewer-task")
    # Keyboard only: 1 = first choice of the current question (then it moves on).
    page.keyboard.press("1")  # verdict: safe
    page.keyboard.press("1")  # refusal: complies
    page.keyboard.press("4")  # helpfulness: 4
    page.keyboard.press("1")  # issues: factual_error (multiple choice toggles)
    page.keyboard.press("2")  # issues: over_refusal
    page.keyboard.press("2")  # ... and off again
    checked = page.locator("fieldset.question input:checked")
    assert checked.count() == 4
    tab.shot("reviewer-task-answered")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(re.compile(r"/ui/review\?msg=submitted"))
    assert "Review submitted." in page.locator(".flash").inner_text()
    tab.shot("reviewer-home-after-submit")
    with transaction(site.engine) as s:
        row = s.execute(sa.select(ReviewRow).where(ReviewRow.task_id == task_id,
                                                   ReviewRow.reviewer_id == "kb-1")
                        ).scalar_one()
        assert row.answers == {"verdict": "safe", "refusal": "complies",
                               "helpfulness": 4.0, "issues": ["factual_error"]}
        assert row.time_spent_s is not None and row.time_spent_s >= 0
        lease = s.execute(sa.select(AssignmentRow).where(AssignmentRow.task_id == task_id)
                          ).scalar_one()
        assert lease.status == "submitted"
    # The queue is now empty for this reviewer.
    page.keyboard.press("n")
    page.wait_for_url(re.compile(r"msg=empty"))


def test_submit_and_next_opens_the_next_task(reviewer_site: Site, tab: Tab) -> None:
    site, page = reviewer_site, tab.page
    sign_in(tab, site, site.tokens["next-1"])
    page.keyboard.press("n")
    page.wait_for_url(re.compile(r"/ui/review/tasks/"))
    first = page.url.rsplit("/", 1)[1]
    for key in ("1", "1", "4"):  # verdict, refusal, helpfulness
        page.keyboard.press(key)
    page.keyboard.press("Control+Shift+Enter")  # submit and next, from the keyboard
    page.wait_for_url(re.compile(r"/ui/review/tasks/[^/?]+\?msg=submitted"))
    second = page.url.rsplit("/", 1)[1].split("?")[0]
    assert second != first
    assert "Review submitted." in page.locator(".flash").inner_text()
    for key in ("1", "1", "4"):
        page.keyboard.press(key)
    page.get_by_role("button", name=re.compile("Submit and next")).click()
    page.wait_for_url(re.compile(r"/ui/review\?msg=submitted_empty"))
    assert "queue is empty" in page.locator(".flash").inner_text()
    with transaction(site.engine) as s:
        done = s.execute(sa.select(ReviewRow.task_id).where(ReviewRow.reviewer_id == "next-1")
                         ).scalars().all()
    assert sorted(done) == sorted([first, second])


def test_blind_review_second_reviewer_cannot_see_first(reviewer_site: Site, tab: Tab
                                                        ) -> None:
    site, page = reviewer_site, tab.page
    sign_in(tab, site, site.tokens["blind-2"])
    page.get_by_role("button", name=re.compile("Next task")).click()
    page.wait_for_url(re.compile(r"/ui/review/tasks/"))
    task_id = page.url.rsplit("/", 1)[1]
    html = page.content()
    assert "bleach and ammonia" in html
    for secret in (SECRET_RATIONALE, SECRET_REWRITE, "first reviewer notes", "blind-1"):
        assert secret not in html
    tab.shot("reviewer-blind")
    # Not through other pages either: the case file is for adjudicators only.
    response = page.goto(site.url(f"/ui/adjudicate/{task_id}"))
    assert response is not None and response.status == 403
    assert SECRET_RATIONALE not in page.content()
    # Nor through the API with the same person's token.
    headers = {"Authorization": f"Bearer {site.tokens['blind-2']}"}
    with httpx.Client(base_url=site.base_url, headers=headers) as api:
        view = api.get(f"/v1/queue/tasks/{task_id}")
        assert view.status_code == 200
        for secret in (SECRET_RATIONALE, SECRET_REWRITE, "first reviewer notes", "blind-1"):
            assert secret not in view.text
        assert api.get(f"/v1/adjudications/{task_id}").status_code == 403
        assert api.get(f"/v1/tasks/{task_id}").status_code == 403
        assert api.get("/v1/reviews/mine").json() == []


def test_model_output_payloads_render_inert(reviewer_site: Site, tab: Tab) -> None:
    site, page = reviewer_site, tab.page
    sign_in(tab, site, site.tokens["xss-1"])
    page.keyboard.press("n")
    page.wait_for_url(re.compile(r"/ui/review/tasks/"))
    page.wait_for_load_state("networkidle")
    tab.shot("reviewer-xss")
    assert tab.dialogs == []
    assert page.evaluate("typeof window.__pwned") == "undefined"
    # The only script on the page is hilt's own file; model text made no elements.
    scripts = page.eval_on_selector_all("script", "els => els.map(e => e.src)")
    assert len(scripts) == 1 and scripts[0].split("?")[0].endswith("/ui/static/hilt.js")
    item = page.locator("section.item")
    for selector in ("img", "a", "script", "iframe", "[onerror]", "[href^='javascript']"):
        assert item.locator(selector).count() == 0, selector
    # The payloads are shown as text, escaped.
    output = page.locator(".item .model-output").inner_text()
    assert "<script>window.__pwned = 1; alert('script')</script>" in output
    assert "onerror=\"window.__pwned = 2" in output
    assert "javascript:alert('link')" in output
    code = page.locator(".item .model-output pre").inner_text()
    assert "<script>alert('in code')</script>" in code
    assert "<script>alert('user turn')</script>" in page.locator(".turn-user").first.inner_text()
    # Nothing was fetched from anywhere but the server itself.
    assert all(url.startswith(site.base_url) for url in tab.requests), tab.requests
    # The page carries a strict Content-Security-Policy.
    response = page.request.get(page.url)
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "img-src 'self' data:" in csp
    # Interacting (focusing, hovering the text) still triggers nothing.
    page.locator(".item .model-output").hover()
    page.keyboard.press("Tab")
    assert tab.dialogs == [] and page.evaluate("typeof window.__pwned") == "undefined"


def _open_own_task(site: Site, tab: Tab, reviewer_id: str) -> str:
    """A fresh reviewer with one task in their own pool, signed in on that task."""
    site.tokens[reviewer_id] = add_person(site.engine, reviewer_id, "reviewer",
                                          pools=[reviewer_id])
    add_task(site.engine, event(f"ev-{reviewer_id}", prompt="Is the sky blue?",
                                response="Yes, because of Rayleigh scattering."),
             pool=reviewer_id, overlap=1)
    sign_in(tab, site, site.tokens[reviewer_id])
    tab.page.keyboard.press("n")
    tab.page.wait_for_url(re.compile(r"/ui/review/tasks/"))
    return tab.page.url.rsplit("/", 1)[1]


def test_a_refused_lease_renewal_stops_the_countdown_and_says_why(reviewer_site: Site,
                                                                  tab: Tab) -> None:
    site, page = reviewer_site, tab.page
    task_id = _open_own_task(site, tab, "lease-1")
    # only the status line is announced, not the countdown that changes every second
    assert page.locator("#lease").get_attribute("aria-live") is None
    assert page.locator("[data-lease-status]").get_attribute("aria-live") == "polite"
    assert page.locator("[data-lease-status]").inner_text() == ""
    with transaction(site.engine) as s:  # the lease ends on the server
        queue.release(s, task_id, "lease-1")
    with page.expect_response(lambda r: r.url.endswith("/heartbeat")) as beat:
        page.locator("#lease").dispatch_event("hilt:heartbeat")
    assert beat.value.status == 409
    status = page.locator("[data-lease-status]")
    status.filter(has_text="lease not renewed").wait_for()
    assert task_id in status.inner_text()  # the server's own detail
    assert "gone" in (page.locator("#lease").get_attribute("class") or "")
    page.wait_for_timeout(1200)  # a tick later the countdown is still gone
    assert page.locator("[data-countdown]").inner_text() == ""


def test_rewrite_key_puts_the_cursor_after_the_response(reviewer_site: Site, tab: Tab
                                                        ) -> None:
    page = tab.page
    _open_own_task(reviewer_site, tab, "rw-1")
    page.keyboard.press("r")
    assert page.evaluate("document.activeElement.id") == "rewrite"
    length, start, end = page.evaluate(
        "[document.activeElement.value.length, document.activeElement.selectionStart, "
        "document.activeElement.selectionEnd]")
    assert length > 0 and start == end == length


def test_time_spent_counts_the_time_before_a_refused_submission(reviewer_site: Site,
                                                                tab: Tab) -> None:
    site, page = reviewer_site, tab.page
    task_id = _open_own_task(site, tab, "time-1")
    page.wait_for_timeout(2600)
    # submit with questions unanswered (the browser's own check switched off): refused
    page.evaluate("document.querySelectorAll('[required]').forEach("
                  "e => e.removeAttribute('required'))")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    assert page.locator("#form-error").count() == 1
    assert int(page.locator("[data-time-spent]").input_value()) >= 2
    for key in ("1", "1", "4"):  # verdict, refusal, helpfulness
        page.keyboard.press(key)
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    with transaction(site.engine) as s:
        spent = s.execute(sa.select(ReviewRow.time_spent_s).where(
            ReviewRow.task_id == task_id)).scalar_one()
    assert spent is not None and spent >= 2
