"""``POST /v1/quality/refresh`` refuses an empty ``rubric_ids`` rather than reading it
as "not given" and refitting every rubric."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token
from hilt.api.app import create_app
from hilt.store.db import transaction
from hilt.store.tables.quality import AggregationModelRow

from .helpers import setup_operation


def test_an_empty_rubric_list_is_refused_and_fits_nothing(engine: Engine) -> None:
    setup_operation(engine, n_tasks=2, n_gold=0, pool=())
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="lead1", role="lead")
        token = create_token(s, role="lead", reviewer_id="lead1")[1]
    http = TestClient(create_app(engine))
    res = http.post("/v1/quality/refresh", json={"rubric_ids": []},
                    headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == 422, res.text
    assert "rubric_ids" in res.text
    with transaction(engine) as s:
        assert s.query(AggregationModelRow).count() == 0
    listed = http.post("/v1/quality/refresh", json={"rubric_ids": ["verdicts"]},
                       headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200, listed.text
    assert [r["rubric_id"] for r in listed.json()["rubrics"]] == ["verdicts"]
