"""Names the store does not know are refused, naming them, rather than answered with an
empty list or a verdict: a monitor filter of ``hilt drift alerts``, a rubric or version
of ``hilt drift compat`` / ``GET /v1/drift/compatibility``, a setting of the HTTP run's
``config``."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token
from hilt.api.app import create_app
from hilt.review.rubrics import publish_rubric
from hilt.store.db import transaction

from . import scenario
from .test_cli_api import cli


def _lead(engine: Engine) -> TestClient:
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="lead1", role="lead")
        token = create_token(s, role="lead", reviewer_id="lead1")[1]
    return TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"})


def test_alerts_of_an_unknown_monitor_are_refused_naming_the_option(
        engine: Engine, db_url: str) -> None:
    code, out = cli(db_url, "drift", "alerts", "--monitor", "label-shift")
    assert code == 2 and "--monitor" in out and "label_shift" in out
    code, out = cli(db_url, "drift", "alerts", "--since", "yesterday")
    assert code == 2 and "'--since'" in out
    code, out = cli(db_url, "drift", "alerts", "--monitor", "label_shift")
    assert code == 0 and json.loads(out) == []


def test_compat_of_an_unpublished_rubric_or_version_is_not_found(
        engine: Engine, db_url: str) -> None:
    scenario.base(engine)
    with transaction(engine) as s:
        publish_rubric(s, scenario.rubric("v2"), actor="lead")
    for args, missing in ((("nope", "1", "2"), "nope@1"), (("nope", "1", "1"), "nope@1"),
                          (("simple", "2", "3"), "simple@3"),
                          (("simple", "7", "1"), "simple@7")):
        code, out = cli(db_url, "drift", "compat", *args)
        assert code == 2 and f"{missing} is not published" in out, (args, out)
    code, out = cli(db_url, "drift", "compat", "simple", "1", "2")
    assert code == 0 and json.loads(out)["status"] == "unknown"
    http = _lead(engine)
    reply = http.get("/v1/drift/compatibility/nope/1/1")
    assert reply.status_code == 404 and "nope@1" in reply.text
    assert http.get("/v1/drift/compatibility/simple/2/3").status_code == 404
    found = http.get("/v1/drift/compatibility/simple/1/2")
    assert found.status_code == 200 and found.json()["reason"] == (
        "no bridge set between these versions")


def test_a_bad_run_setting_over_http_is_named_inside_config(engine: Engine) -> None:
    http = _lead(engine)
    for config, field in (({"window_hours": "24"}, "config.window_hours"),
                          ({"history_windows": 3}, "config.history_windows"),
                          ({"bogus": 1}, "config.bogus")):
        reply = http.post("/v1/drift/run", json={"config": config, "dry_run": True})
        body: dict[str, Any] = reply.json()
        assert reply.status_code == 422 and body["error"]["field"] == field, body
