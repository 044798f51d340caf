"""A form refused for its CSRF token (sent from a tab opened before the latest sign-in)
leads back to the page it came from, a fresh GET with a fresh token, rather than asking
for a reload that would only send the same stale token again."""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.store.db import transaction
from hilt.store.tables.review import ReviewRow
from tests.web.asgi import sign_in
from tests.web.conftest import add_person
from tests.web.seed import add_task, event, publish_harm

ANSWERS = {"q.verdict": "safe", "q.refusal": "complies", "q.helpfulness": "4"}


def _links(page: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'<a href="([^"]+)"', page)]


def _way_on(page: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" class="way-on">', page)
    return html.unescape(found.group(1)) if found else None


def test_a_form_from_a_tab_older_than_the_sign_in_leads_back_to_its_page(
        client: TestClient, engine: Engine) -> None:
    publish_harm(engine)
    task_id = add_task(engine, event("ev-csrf", prompt="p", response="r"), pool="csrf",
                       overlap=1)
    token = add_person(engine, "rev-csrf", "reviewer", pools=["csrf"])
    old_csrf = sign_in(client, token)  # the first tab
    claim = client.post("/ui/review/next", data={"csrf_token": old_csrf},
                        follow_redirects=False)
    assert claim.headers["location"].startswith(f"/ui/review/tasks/{task_id}")
    new_csrf = sign_in(client, token)  # signing in again, in another tab
    assert new_csrf != old_csrf

    refused = client.post(f"/ui/review/tasks/{task_id}/submit",
                          data={"csrf_token": old_csrf, **ANSWERS})
    assert refused.status_code == 403
    assert "CSRF token" in refused.text
    # reloading this answer would resend the stale token: the page says to go back
    assert "reload the page" not in refused.text
    back = _way_on(refused.text)
    assert back == f"/ui/review/tasks/{task_id}"
    # the way back is the task page, with the lease still held and a fresh token
    page = client.get(back)
    assert page.status_code == 200
    assert f'action="/ui/review/tasks/{task_id}/submit"' in page.text
    assert f'value="{new_csrf}"' in page.text
    sent = client.post(f"/ui/review/tasks/{task_id}/submit",
                       data={"csrf_token": new_csrf, **ANSWERS}, follow_redirects=False)
    assert sent.status_code == 303
    with transaction(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(ReviewRow).where(
            ReviewRow.task_id == task_id)).scalar_one() == 1


@pytest.mark.parametrize(("path", "back"), [
    ("/ui/review/next", "/ui/review"),
    ("/ui/lead/drift/da-1/ack", "/ui/lead"),
    ("/ui/adjudicate/t-1", "/ui/adjudicate/t-1"),
    ("/ui/lead/gate/abc/signoff", "/ui/lead/gate/abc"),
    ("/ui/lead/rubrics/preview", "/ui/lead/rubrics"),
])
def test_each_refused_form_links_to_its_page(client: TestClient, engine: Engine,
                                             path: str, back: str) -> None:
    sign_in(client, add_person(engine, "lead-csrf", "lead"))
    refused = client.post(path, data={"csrf_token": "stale"})
    assert refused.status_code == 403
    assert _way_on(refused.text) == back


@pytest.mark.parametrize("path", [
    "/ui/adjudicate/%2F%2Fevil.example",
    "/ui/adjudicate/%5Cevil.example",
    "/ui/review/tasks/%2F%2Fevil.example%2F/submit",
    "/ui/lead/gate/https:%2F%2Fevil.example/signoff",
    "/ui/adjudicate/%0D%0ALocation:%20x",
    "/ui/nowhere",
])
def test_the_way_back_never_leaves_the_site(client: TestClient, engine: Engine,
                                            path: str) -> None:
    sign_in(client, add_person(engine, "lead-csrf", "lead"))
    refused = client.post(path, data={"csrf_token": "stale"})
    assert refused.status_code == 403
    links = _links(refused.text)
    assert links
    for link in links:  # same-site paths only: no scheme, no host, nothing a browser
        parts = urlsplit(link)  # would read as another site
        assert not parts.scheme and not parts.netloc, link
        assert link.startswith("/ui/") and "//" not in link and "\\" not in link, link
        assert all("!" <= c <= "~" for c in link), link
