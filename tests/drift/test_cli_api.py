"""The drift CLI and HTTP API: thin shells over the same functions, roles enforced."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import add_reviewer, create_token
from hilt.api.app import create_app, route_roles
from hilt.cli import app
from hilt.store import audit
from hilt.store.db import transaction

from . import scenario


def cli(db: str, *args: str) -> tuple[int, str]:
    """Exit code and output, with hilt's errors mapped to exit 2 as ``hilt.cli.main``
    does."""
    result = CliRunner().invoke(app, [*args, "--db", db])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        from hilt.errors import HiltError

        assert isinstance(result.exception, HiltError), result.exception
        return 2, str(result.exception)
    return result.exit_code, result.output


@pytest.fixture
def history(engine: Engine) -> Engine:
    scenario.base(engine)
    scenario.history(engine)
    return engine


def test_cli_run_list_ack_and_bad_config(history: Engine, db_url: str, tmp_path: Path
                                          ) -> None:
    config = tmp_path / "drift.yaml"
    config.write_text(f"lookback_windows: {scenario.DAYS}\nmin_window_n: 40\n")
    now = (scenario.T0 + timedelta(days=scenario.DAYS, hours=1)).isoformat()
    code, out = cli(db_url, "drift", "run", "--now", now, "--config", str(config))
    assert code == 0, out
    found = json.loads(out)["alerts"]
    assert any(a["monitor"] == "label_shift" for a in found)
    code, out = cli(db_url, "drift", "alerts", "--monitor", "label_shift")
    rows = json.loads(out)
    assert code == 0 and rows and "detail" not in rows[0]
    code, out = cli(db_url, "drift", "ack", rows[0]["id"], "--note", "seen")
    assert code == 0 and json.loads(out)["status"] == "acknowledged"
    config.write_text("window_hours: 24\nno_such_setting: 1\n")
    code, out = cli(db_url, "drift", "run", "--config", str(config))
    assert code == 2 and "no_such_setting" in out and str(config) in out


@pytest.mark.parametrize(("text", "field"), [
    ("min_window_n: abc\n", "min_window_n"),
    ("enabled: label_shift\n", "enabled"),
])
def test_cli_config_with_a_bad_value_exits_2_naming_file_and_field(
        engine: Engine, db_url: str, tmp_path: Path, text: str, field: str) -> None:
    config = tmp_path / "drift.yaml"
    config.write_text(text)
    code, out = cli(db_url, "drift", "run", "--dry-run", "--config", str(config))
    assert code == 2 and str(config) in out and f"field '{field}'" in out


def test_cli_decide_with_versions_reversed_is_refused(engine: Engine, db_url: str) -> None:
    scenario.base(engine)
    code, out = cli(db_url, "drift", "decide", "simple", "2", "1", "--kind", "accept",
                    "--reason", "x")
    assert code == 2 and "new_version" in out
    with transaction(engine) as session:
        assert not audit.entries(session, action="rubric.compat_decision")


def test_cli_lineage_of_unknown_model_fails_cleanly(engine: Engine, db_url: str) -> None:
    code, out = cli(db_url, "lineage", "reward-0000")
    assert code == 2 and "not found" in out


def test_api_roles_and_alerts(history: Engine) -> None:
    with transaction(history) as s:
        add_reviewer(s, reviewer_id="lead1", role="lead")
        tokens = {"lead": create_token(s, role="lead", reviewer_id="lead1")[1],
                  "reviewer": create_token(s, role="reviewer", reviewer_id="r0")[1],
                  "service": create_token(s, role="service")[1]}
    web = create_app(history)
    drift_routes = {k: v for k, v in route_roles(web).items() if k[1].startswith("/v1/drift")}
    assert drift_routes and all("reviewer" not in roles for roles in drift_routes.values())
    http = TestClient(web)

    def call(who: str, method: str, path: str, **kw: Any) -> Any:
        return http.request(method, path, headers={"Authorization": f"Bearer {tokens[who]}"},
                            **kw)

    now = (scenario.T0 + timedelta(days=scenario.DAYS, hours=1)).isoformat()
    body = {"now": now, "config": {"lookback_windows": scenario.DAYS, "min_window_n": 40}}
    assert call("reviewer", "POST", "/v1/drift/run", json=body).status_code == 403
    assert http.get("/v1/drift/alerts").status_code == 401
    ran = call("service", "POST", "/v1/drift/run", json=body)
    assert ran.status_code == 200 and ran.json()["alerts"]
    # a time without a zone is UTC, as on the command line (it was a 500)
    naive = {**body, "now": now.replace("+00:00", ""), "dry_run": True}
    assert "+" not in naive["now"]
    dry = call("service", "POST", "/v1/drift/run", json=naive)
    assert dry.status_code == 200 and dry.json()["alerts"] == ran.json()["alerts"]
    since = call("lead", "GET", "/v1/drift/alerts", params={"since": "2020-01-01T00:00:00"})
    assert since.status_code == 200
    assert call("service", "POST", "/v1/drift/run",
                json={"config": {"bogus": 1}}).status_code == 422
    bad_value = call("service", "POST", "/v1/drift/run", json={"config": {"min_window_n": "x"}})
    assert bad_value.status_code == 422 and "min_window_n" in bad_value.text
    listed = call("lead", "GET", "/v1/drift/alerts", params={"monitor": "label_shift"})
    assert listed.status_code == 200 and listed.json()
    alert_id = listed.json()[0]["id"]
    assert call("service", "POST", f"/v1/drift/alerts/{alert_id}/ack",
                json={}).status_code == 403
    assert call("lead", "POST", f"/v1/drift/alerts/{alert_id}/ack",
                json={"note": "ok"}).json()["status"] == "acknowledged"
    compat = call("service", "GET", "/v1/drift/compatibility/simple/1/1")
    assert compat.json()["status"] == "compatible"
    assert call("lead", "GET", "/v1/drift/bridges/nope").status_code == 404
