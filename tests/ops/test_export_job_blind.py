"""Blind review: an ``export.reviews`` job is refused to a caller who is reviewing an
item it would export, exactly as ``GET /v1/exports/reviews.jsonl`` is; its file holds
the same lines and whoever started it can read them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token
from hilt.api.app import create_app
from hilt.ops import install, job_views
from hilt.review.queue import claim_next
from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow

from .helpers import workload


@pytest.fixture
def client(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    monkeypatch.setenv("HILT_EXPORT_DIR", str(tmp_path))
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="lea", role="lead")
        s.flush()
        s.get_one(ReviewerRow, "lea").status = "calibrated"
        tokens = {"lea": create_token(s, role="lead", reviewer_id="lea")[1],
                  "service": create_token(s, role="service")[1]}
    app = install(create_app(engine), scheduler=False, json_logs=False)
    with TestClient(app) as c:
        yield c, {k: {"Authorization": f"Bearer {v}"} for k, v in tokens.items()}


def test_a_lead_reviewing_an_exported_item_cannot_start_the_export_job(
        engine: Engine, client: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    c, auth = client
    workload(engine, 2, overlap=2)
    with transaction(engine) as s:
        assert claim_next(s, "lea") is not None  # an unsubmitted review of one item
    direct = c.get("/v1/exports/reviews.jsonl", headers=auth["lea"])
    assert direct.status_code == 403
    started = c.post("/v1/jobs", json={"kind": "export.reviews"}, headers=auth["lea"])
    assert started.status_code == 403, started.text
    assert started.json()["detail"] == direct.json()["detail"]
    assert "'lea' is reviewing 1 item of this export" in started.json()["detail"]
    # ... with a status filter that holds the item too, and nothing was queued
    assert c.post("/v1/jobs", json={"kind": "export.reviews", "params": {"status": "open"}},
                  headers=auth["lea"]).status_code == 403
    with transaction(engine) as s:
        assert job_views.list_jobs(s, kind="export.reviews") == []
    # a filter that leaves the item out is allowed, as is a caller who reviews nothing
    assert c.post("/v1/jobs", json={"kind": "export.reviews",
                                    "params": {"status": "resolved"}},
                  headers=auth["lea"]).status_code == 202
    assert c.post("/v1/jobs", json={"kind": "export.reviews"},
                  headers=auth["service"]).status_code == 202
    # bad parameters are still a 422, not a blind-review refusal
    assert c.post("/v1/jobs", json={"kind": "export.reviews",
                                    "params": {"status": "bogus"}},
                  headers=auth["lea"]).status_code == 422
