"""Looking a stored decision up by a prefix of its hash: the minimum length is stated,
LIKE wildcards are plain characters and an ambiguous prefix says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import Conflict, InputError, NotFound
from hilt.evals.check import run_check
from hilt.gate.store import get_decision, store_decision
from hilt.store.db import make_engine, transaction
from hilt.store.tables.gate import GateDecisionRow


def _stored(engine: Engine, tmp_path: Path) -> str:
    suite = tmp_path / "s.jsonl"
    suite.write_text(json.dumps({"id": "a", "prompt": "p", "slice": "x", "expect": "comply"})
                     + "\n")
    resp = tmp_path / "r.jsonl"
    resp.write_text(json.dumps({"id": "a", "response": "ok", "judgment": "comply"}) + "\n")
    record = run_check(suite=suite, candidate=resp, reference=resp, out=tmp_path / "o").record
    with transaction(engine) as session:
        return store_decision(session, record, actor="ci").hash


def _twin(engine: Engine, decision_hash: str, new_hash: str) -> None:
    """A second row whose hash shares a long prefix with ``decision_hash``."""
    with transaction(engine) as session:
        row = session.get(GateDecisionRow, decision_hash)
        assert row is not None
        session.add(GateDecisionRow(
            hash=new_hash, created_at=row.created_at, outcome=row.outcome,
            policy_id=row.policy_id, policy_version=row.policy_version,
            suite_id=row.suite_id, candidate_id=row.candidate_id,
            reference_id=row.reference_id, supersedes=None, stored_by="ci",
            record=row.record))


def test_prefix_lookup(engine: Engine, tmp_path: Path) -> None:
    full = _stored(engine, tmp_path)
    with transaction(engine) as session:
        assert get_decision(session, full).hash == full
        assert get_decision(session, full[:8]).hash == full
        with pytest.raises(InputError, match="at least 8 characters"):
            get_decision(session, full[:7])
        # "%" and "_" are characters of the prefix, not wildcards.
        for wildcard in (full[:7] + "%", full[:7] + "_", full[:8] + "%"):
            with pytest.raises(NotFound):
                get_decision(session, wildcard)
    other = full[:12] + ("0" if full[12] != "0" else "1") + full[13:]
    _twin(engine, full, other)
    with transaction(engine) as session:
        with pytest.raises(Conflict, match="ambiguous"):
            get_decision(session, full[:10])
        assert get_decision(session, full[:13]).hash == full
        assert get_decision(session, other[:13]).hash == other


def test_cli_states_the_minimum_prefix(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    try:
        full = _stored(engine, tmp_path)
    finally:
        engine.dispose()
    def hilt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hilt", *args, "--db", db_url],
                              capture_output=True, text=True, timeout=120)

    short = hilt("gate", "show", full[:5])
    assert short.returncode == 2
    assert short.stderr.strip().splitlines() == [
        f"error: field 'decision': decision '{full[:5]}' is too short: give the hash or a "
        "prefix of at least 8 characters"]
    wildcard = hilt("gate", "show", full[:7] + "%")
    assert wildcard.returncode == 2 and "no gate decision" in wildcard.stderr
    shown = CliRunner().invoke(app, ["gate", "show", full[:8], "--db", db_url])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["hash"] == full
