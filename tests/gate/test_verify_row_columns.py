"""A stored decision's row repeats some of its record in columns (outcome, policy, ids,
supersedes). `hilt gate verify HASH` compares them with the record, and the listings
(`hilt gate list`, the lead dashboard) read the record, so an edited column can neither
pass verification nor show a release owner another outcome."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.store.db import transaction
from hilt.store.tables.gate import GateDecisionRow
from hilt.web.dashboard import lead_dashboard
from tests.gate.tiny_check import stored_tiny_decision


@pytest.mark.parametrize(("column", "value"), [("outcome", "pass"),
                                               ("candidate_id", "other-model"),
                                               ("policy_version", "9")])
def test_an_edited_column_fails_verify(db_url: str, engine: Engine, tmp_path: Path,
                                       column: str, value: str) -> None:
    # blocks: the policy asks for a sign-off nobody gave
    decision = stored_tiny_decision(engine, tmp_path, [{"role": "release_owner"}])
    runner = CliRunner()
    clean = runner.invoke(app, ["gate", "verify", decision[:10], "--db", db_url])
    assert clean.exit_code == 0, clean.output
    with transaction(engine) as s:
        s.execute(sa.update(GateDecisionRow).where(GateDecisionRow.hash == decision)
                  .values({column: value}))
    result = runner.invoke(app, ["gate", "verify", decision[:10], "--db", db_url])
    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["problems"]
    assert [p for p in problems if p.startswith(f"gate_decisions.{column}: {value!r} in "
                                                "the row")], problems


def test_listings_read_the_record(db_url: str, engine: Engine, tmp_path: Path) -> None:
    decision = stored_tiny_decision(engine, tmp_path, [{"role": "release_owner"}])
    with transaction(engine) as s:
        s.execute(sa.update(GateDecisionRow).where(GateDecisionRow.hash == decision)
                  .values(outcome="pass"))
    listed = CliRunner().invoke(app, ["gate", "list", "--db", db_url])
    assert listed.exit_code == 0, listed.output
    assert [(d["hash"], d["outcome"]) for d in json.loads(listed.stdout)] \
        == [(decision, "block")]
    with transaction(engine) as s:
        shown = lead_dashboard(s, datetime.now(UTC))["gate"]
    assert [(d["hash"], d["outcome"]) for d in shown] == [(decision, "block")]
