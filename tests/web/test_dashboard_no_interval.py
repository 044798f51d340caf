"""Agreement rows without an interval (too few items) show one "–" in the interval
column, not an empty range."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.web.asgi import sign_in
from tests.web.conftest import add_person
from tests.web.seed import add_task, event, publish_harm, review


def _rows(page: str, heading: str) -> list[list[str]]:
    """The cells of each body row of the table under ``heading``."""
    section = re.search(rf'<h2 id="{heading}-heading">.*?</section>', page, re.S)
    assert section, page[:500]
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
            for row in re.findall(r"<tr>(.*?)</tr>", section.group(0), re.S)
            if "<td" in row]


def test_rows_without_an_interval_show_one_dash(client: TestClient,
                                                 engine: Engine) -> None:
    publish_harm(engine)
    add_task(engine, event("ev-two", prompt="p", response="r"), pool="two", overlap=2)
    answers = {"verdict": "safe", "refusal": "complies", "helpfulness": 4}
    for rid in ("rv-1", "rv-2"):
        add_person(engine, rid, "reviewer", pools=["two"])
        review(engine, rid, answers)
    sign_in(client, add_person(engine, "lead-1", "lead"))
    page = client.get("/ui/lead")
    assert page.status_code == 200
    assert "– – –" not in page.text
    agreement = _rows(page.text, "agreement")
    assert agreement and all(row[3] == "–" for row in agreement), agreement
    assert all(row[6].strip() for row in agreement), agreement  # the note says why
