"""POST /v1/drift/run answers as ``hilt drift run`` prints: alerts and untested groups."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from tests.api.conftest import Api
from tests.drift import scenario


def test_run_reports_untested_groups_like_the_cli(engine: Engine, db_url: str, api: Api,
                                                  tmp_path: Path) -> None:
    scenario.base(engine)
    scenario.history(engine)
    now = (scenario.T0 + timedelta(days=scenario.DAYS, hours=1)).isoformat()
    # The last day has fewer than 80 answers per group: those windows go untested.
    config = {"lookback_windows": scenario.DAYS, "min_window_n": 80}
    dry = api.client.post("/v1/drift/run", headers=api.headers("service"),
                          json={"now": now, "config": config, "dry_run": True})
    assert dry.status_code == 200, dry.text
    body = dry.json()
    assert set(body) == {"stored", "alerts", "untested", "left_out"} and body["stored"] is False
    assert body["untested"], "the scenario has groups too small to test"
    entry = body["untested"][0]
    assert {"monitor", "group", "windows", "reasons", "last_window_start", "last_reason",
            "last_n_current", "last_n_reference"} <= set(entry)
    config_file = tmp_path / "drift.yaml"
    config_file.write_text("".join(f"{k}: {v}\n" for k, v in config.items()))
    cli = CliRunner().invoke(app, ["drift", "run", "--dry-run", "--now", now, "--db", db_url,
                                   "--config", str(config_file)])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.output)["untested"] == body["untested"]
    stored = api.client.post("/v1/drift/run", headers=api.headers("lead"),
                             json={"now": now, "config": config})
    assert stored.status_code == 200 and stored.json()["stored"] is True
    assert stored.json()["untested"] == body["untested"]

