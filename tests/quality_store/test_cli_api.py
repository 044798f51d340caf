"""``hilt quality reviewers|refresh|set-status`` and the ``/v1/quality`` endpoints."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import add_reviewer, create_token
from hilt.api.app import create_app, route_roles
from hilt.cli import app
from hilt.review.queue import QueueConfig
from hilt.review.workflow import work_round_robin
from hilt.store.db import transaction

from .helpers import POOL, setup_operation

SMALL_POOL = tuple(p for p in POOL if p.name in ("rev-ada", "rev-ben", "rev-fox"))


def _cli(db: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--db", db])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        from hilt.errors import HiltError

        assert isinstance(result.exception, HiltError), result.exception
        return 2, str(result.exception)
    return result.exit_code, result.output


def _operation(engine: Engine) -> None:
    op = setup_operation(engine, n_tasks=12, n_gold=4, seed=2, pool=SMALL_POOL)
    random.seed(0)
    work_round_robin(engine, [p.name for p in SMALL_POOL], op.answer,
                     config=QueueConfig(gold_rate=0.5))


def test_cli_refresh_of_an_unknown_rubric_is_not_found(engine: Engine, db_url: str) -> None:
    # A mistyped rubric id used to refit nothing and exit 0.
    code, out = _cli(db_url, "quality", "refresh", "--rubric", "nosuch")
    assert code == 2 and "nosuch" in out and "not published" in out


def test_cli_reviewers_and_refresh(engine: Engine, db_url: str, tmp_path: Path) -> None:
    _operation(engine)
    code, out = _cli(db_url, "quality", "reviewers")
    assert code == 0, out
    header, *lines = out.strip().splitlines()
    assert header.split()[:3] == ["reviewer", "status", "replayed"]
    assert [line.split()[0] for line in lines] == sorted(p.name for p in SMALL_POOL)
    settings = tmp_path / "quality.yaml"
    settings.write_text("aggregation: {min_reviewer_answers: 3, min_confidence: 0.6}\n"
                        "calibration: {window: 10, cusum: {threshold: 4}}\n")
    code, out = _cli(db_url, "quality", "refresh", "--config", str(settings))
    assert code == 0, out
    summary = json.loads(out)
    (rubric,) = summary["rubrics"]
    assert rubric["rubric_id"] == "verdicts" and len(rubric["models"]) == 1
    code, out = _cli(db_url, "quality", "reviewers", "--json")
    rows = json.loads(out)
    assert {r["reviewer"] for r in rows} == {p.name for p in SMALL_POOL}
    for r in rows:
        assert r["model_n_answers"] > 0 and r["model_ci_low"] <= r["model_accuracy"]
        assert r["gold_ci_low"] <= (r["gold_accuracy"] or 0) <= r["gold_ci_high"]
        # The rolling rate has its own interval, over at most `window` (10) answers.
        assert r["rolling_n_gold"] == min(r["n_gold"], 10)
        assert r["rolling_ci_low"] <= (r["rolling_gold_accuracy"] or 0) <= r["rolling_ci_high"]
    settings.write_text("aggregation: {min_confidense: 0.6}\n")
    code, out = _cli(db_url, "quality", "refresh", "--config", str(settings))
    assert code == 2 and "min_confidense" in out
    code, out = _cli(db_url, "quality", "set-status", "rev-fox", "suspended",
                     "--reason", "spam")
    assert code == 0 and json.loads(out)["status"] == "suspended"


def test_api_report_models_refresh_and_roles(engine: Engine) -> None:
    _operation(engine)
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="lead1", role="lead")
        add_reviewer(s, reviewer_id="adj1", role="adjudicator")
        tokens = {"lead": create_token(s, role="lead", reviewer_id="lead1")[1],
                  "adjudicator": create_token(s, role="adjudicator", reviewer_id="adj1")[1],
                  "reviewer": create_token(s, role="reviewer", reviewer_id="rev-ada")[1],
                  "service": create_token(s, role="service")[1]}
    web = create_app(engine)
    http = TestClient(web)

    def call(who: str, method: str, path: str, body: object = None) -> Any:
        return http.request(method, path, json=body,
                            headers={"Authorization": f"Bearer {tokens[who]}"})

    roles = {k: v for k, v in route_roles(web).items() if k[1].startswith("/v1/quality")}
    assert roles and all(v <= {"lead", "adjudicator", "admin"} for v in roles.values())
    for who in ("reviewer", "service"):
        assert call(who, "GET", "/v1/quality/reviewers").status_code == 403
    assert call("adjudicator", "POST", "/v1/quality/refresh", {}).status_code == 403
    res = call("lead", "POST", "/v1/quality/refresh",
               {"settings": {"aggregation": {"min_reviewer_answers": 3}}})
    assert res.status_code == 200, res.text
    models = call("adjudicator", "GET", "/v1/quality/models?rubric_id=verdicts").json()
    assert [m["question_id"] for m in models] == ["verdict"]
    report = call("adjudicator", "GET", "/v1/quality/reviewers").json()
    assert {r["reviewer"] for r in report} >= {p.name for p in SMALL_POOL}
    bad = call("lead", "POST", "/v1/quality/refresh", {"settings": {"nope": {}}})
    assert bad.status_code == 422
    res = call("lead", "POST", "/v1/quality/reviewers/rev-fox/status",
               {"status": "suspended", "reason": "spam"})
    assert res.status_code == 200
    assert res.json() == {"reviewer": "rev-fox", "status": "suspended", "note": None}
    # onboarding again with no gold items in this store: the answer says what follows
    back = call("lead", "POST", "/v1/quality/reviewers/rev-fox/status",
                {"status": "onboarding", "reason": "redo"}).json()
    assert back["note"].startswith("rev-fox has 0 gold item(s) left to answer")
    assert call("lead", "POST", "/v1/quality/reviewers/nobody/status",
                {"status": "suspended", "reason": "x"}).status_code == 404
