"""The lead dashboard's reviewer-calibration table shows the number of gold items its
interval counts beside the gold answers (the interval is per gold item)."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.quality import reviewer_store
from tests.web.asgi import sign_in
from tests.web.conftest import add_person


def _row(reviewer: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "reviewer": reviewer, "role": "reviewer", "status": "calibrated", "n_answers": 90,
        "n_gold": 0, "n_gold_items": 0, "gold_correct": 0, "gold_accuracy": None,
        "gold_ci_low": 0.0, "gold_ci_high": 1.0, "trend_alarm": False}
    return {**row, **values}


def test_badinput_quality_dashboard_shows_gold_items_beside_gold_answers(
        engine: Engine, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [_row("eli", n_gold=60, n_gold_items=20, gold_correct=59, gold_accuracy=59 / 60,
                 gold_ci_low=0.76, gold_ci_high=0.99),
            _row("kim", n_gold=3, n_gold_items=1, gold_correct=3, gold_accuracy=1.0,
                 gold_ci_low=0.21, gold_ci_high=1.0),
            _row("lou")]
    monkeypatch.setattr(reviewer_store, "reviewer_quality_report",
                        lambda session, config=None: rows)
    sign_in(client, add_person(engine, "lead-1", "lead"))
    page = client.get("/ui/lead")
    assert page.status_code == 200, page.text
    section = page.text.split('id="calibration-heading"', 1)[1].split("</section>", 1)[0]
    cells = {name: html.unescape(re.sub(r"\s+", " ", cell)) for name, cell in re.findall(
        r'<th scope="row">([^<]+)</th><td>\d+</td><td>([^<]+)</td>', section)}
    assert cells == {"eli": "59/60 answers, 20 items", "kim": "3/3 answers, 1 item",
                     "lou": "0/0 answers, 0 items"}
    assert "counted per gold item" in section
