"""A lead dashboard table that shows only the newest rows says so, and where the rest
are listed; one that shows every row does not claim more."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.gate.store import store_decision
from hilt.store.db import transaction
from hilt.store.tables.datasets import DatasetVersionRow
from hilt.web import dashboard
from tests.gate.tiny_check import tiny_record
from tests.web.asgi import sign_in
from tests.web.conftest import add_person
from tests.web.seed import add_drift_alert, add_model, add_task, event, publish_harm, review


def _section(page: str, heading: str) -> tuple[str, int]:
    """The text of the section under ``heading`` and its number of table body rows."""
    found = re.search(rf'<h2 id="{heading}-heading">.*?</section>', page, re.S)
    assert found, page[:500]
    rows = len(re.findall(r"<tr>\s*<t[dh]", found.group(0).split("<tbody>")[-1]))
    inline = re.sub(r"</?code>", "", found.group(0))
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", inline)).split())
    return text, rows


def _dataset(engine: Engine, i: int) -> None:
    with transaction(engine) as s:
        s.add(DatasetVersionRow(
            id=f"{i:064x}", name=f"set-{i}", kind="sft", record_count=1, spec={},
            manifest={}, code_version="hilt", created_by="lead-1", data_path="/tmp/x",
            created_at=datetime(2030, 1, 1, tzinfo=UTC) + timedelta(days=i)))


@pytest.fixture
def three_of_each(engine: Engine, tmp_path: Path) -> None:
    for i in range(3):
        _dataset(engine, i)
        add_model(engine)
        add_drift_alert(engine, f"da-{i}")
        (tmp_path / str(i)).mkdir()
        record = tiny_record(tmp_path / str(i), [{"role": f"role_{i}"}])
        with transaction(engine) as s:
            store_decision(s, record, actor="ci")
    publish_harm(engine)
    for i, rid in enumerate(("rv-1", "rv-2")):
        add_task(engine, event(f"ev-cap-{i}", prompt="p", response="r"), pool="cap",
                 overlap=1)
        add_person(engine, rid, "reviewer", pools=["cap"])
        review(engine, rid, {"verdict": "safe", "refusal": "complies", "helpfulness": 4})


TABLES = {"datasets": ("MAX_DATASETS", "The newest 2 of 3 dataset versions; "
                                       "hilt dataset list lists them all."),
          "models": ("MAX_MODELS", "The newest 2 model versions; older ones are not "
                                   "shown here (hilt models list lists them all)."),
          "drift": ("MAX_ALERTS", "The newest 2 alerts, by window; older ones are not "
                                  "shown here (hilt drift alerts lists them, a page at a "
                                  "time)."),
          "gate": ("MAX_GATE", "The newest 2 gate decisions; older ones are not shown "
                               "here (hilt gate list lists them all, a page at a "
                               "time).")}


@pytest.mark.usefixtures("three_of_each")
def test_capped_tables_say_so(client: TestClient, engine: Engine,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    for cap, _ in TABLES.values():
        monkeypatch.setattr(dashboard, cap, 2)
    monkeypatch.setattr(dashboard, "MAX_REVIEWS", 1)
    sign_in(client, add_person(engine, "lead-1", "lead"))
    page = client.get("/ui/lead").text
    for heading, (_, says) in TABLES.items():
        text, rows = _section(page, heading)
        assert rows == 2, (heading, text)
        assert says in text, (heading, text)
    text, _ = _section(page, "agreement")
    assert "from the newest 1 reviews: older reviews are left out" in text


@pytest.mark.usefixtures("three_of_each")
def test_whole_tables_claim_no_more(client: TestClient, engine: Engine,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for cap, _ in TABLES.values():
        monkeypatch.setattr(dashboard, cap, 3)
    sign_in(client, add_person(engine, "lead-1", "lead"))
    page = client.get("/ui/lead").text
    for heading in TABLES:
        text, rows = _section(page, heading)
        assert rows == 3, (heading, text)
        assert "newest 3" not in text and "not shown here" not in text, (heading, text)
    assert "All 3 alerts, newest window first." in _section(page, "drift")[0]
    assert "left out" not in _section(page, "agreement")[0]


def test_more_drift_alerts_than_the_page_shows_are_said_to_exist(
        client: TestClient, engine: Engine) -> None:
    for i in range(dashboard.MAX_ALERTS + 1):
        add_drift_alert(engine, f"da-{i:03d}")
    sign_in(client, add_person(engine, "lead-1", "lead"))
    text, rows = _section(client.get("/ui/lead").text, "drift")
    assert rows == dashboard.MAX_ALERTS
    assert f"The newest {dashboard.MAX_ALERTS} alerts, by window; older ones are not " \
           "shown here" in text
