"""The page header names the identity the pages record work under (the reviewer id,
escaped) and its role, not the token's name."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token
from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow
from tests.web.asgi import sign_in


def test_the_header_names_the_signed_in_reviewer(client: TestClient,
                                                 engine: Engine) -> None:
    reviewer_id = "rev-<i>ada&amp;"
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id=reviewer_id, role="reviewer")
        s.flush()
        row = s.get(ReviewerRow, reviewer_id)
        assert row is not None
        row.status = "calibrated"
        token = create_token(s, role="reviewer", reviewer_id=reviewer_id)[1]
    sign_in(client, token)
    page = client.get("/ui/review")
    assert page.status_code == 200
    who = re.search(r'<span class="who">(.*?)</span>\s*<button', page.text, re.S)
    assert who, page.text[:1000]
    assert "rev-&lt;i&gt;ada&amp;amp; · reviewer" in who.group(1)
    assert "<i>" not in who.group(1)
    assert html.unescape(re.sub(r"<[^>]+>", "", who.group(1))) == \
        f"Signed in as {reviewer_id} · reviewer"
