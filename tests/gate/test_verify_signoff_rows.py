"""A sign-off typed into a record is derived from its parent in every other respect:
``hilt gate verify --chain`` (and of a stored hash) must find that no ``gate_signoffs``
row records it, rather than pass it as a signed decision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import add_reviewer
from hilt.cli import app
from hilt.gate.decision import add_signoff, build_decision
from hilt.gate.policy import policy_from_dict
from hilt.gate.store import sign_off, store_decision
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.gate import GateDecisionRow
from tests.gate.tiny_check import tiny_record

AT = "2026-12-08T09:00:00+00:00"
ROLES = [{"role": "release_owner"}, {"role": "safety_lead"}]


def _stored_blocked(engine: Engine, tmp_path: Path) -> dict[str, Any]:
    record = tiny_record(tmp_path, ROLES)
    assert record["outcome"] == "block"
    with transaction(engine) as s:
        store_decision(s, record, actor="ci")
    return record


def _verify(db_url: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["gate", "verify", *args, "--db", db_url])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def test_a_typed_in_signoff_on_a_superseding_file_is_caught(engine: Engine, db_url: str,
                                                             tmp_path: Path) -> None:
    parent = _stored_blocked(engine, tmp_path)
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="ana", role="lead", may_sign=["release_owner"])
    with transaction(engine) as s:
        signed = dict(sign_off(s, parent["hash"], role="release_owner",
                               signed_by="ana").record)
    # derived from the stored record by one sign-off, as `hilt gate signoff` would make
    # it, but never recorded: "mallory" is not even an identity
    forged = add_signoff(signed, {"role": "safety_lead", "by": "mallory", "note": "",
                                  "at": AT, "via": "cli"}, AT)
    assert forged["outcome"] == "pass"
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    code, out = _verify(db_url, str(path), "--chain")
    assert code == 1 and out["chain"] == "checked"
    assert any("safety_lead by mallory was never recorded" in p for p in out["problems"]), \
        out["problems"]
    # the real one still verifies with its chain
    good = tmp_path / "signed.json"
    good.write_text(json.dumps(signed))
    assert _verify(db_url, str(good), "--chain")[0] == 0


def test_a_stored_record_whose_signoff_has_no_row_fails_verify(engine: Engine, db_url: str,
                                                               tmp_path: Path) -> None:
    parent = _stored_blocked(engine, tmp_path)
    forged = add_signoff(parent, {"role": "release_owner", "by": "mallory", "note": "",
                                  "at": AT, "via": "cli"}, AT)
    with transaction(engine) as s:  # straight into the table, as a database editor might
        s.add(GateDecisionRow(created_at=utcnow(), stored_by="mallory", record=forged,
                              hash=forged["hash"], outcome=forged["outcome"],
                              policy_id=forged["inputs"]["policy"]["id"],
                              policy_version=forged["inputs"]["policy"]["version"],
                              suite_id="s", candidate_id="r", reference_id="r",
                              supersedes=parent["hash"]))
    code, out = _verify(db_url, forged["hash"])
    assert code == 1
    assert any("release_owner by mallory was never recorded" in p for p in out["problems"])


def test_a_first_record_carrying_signoffs_is_caught_with_chain(engine: Engine, db_url: str,
                                                               tmp_path: Path) -> None:
    record = tiny_record(tmp_path, ROLES)
    inputs = record["inputs"]
    facts = {**inputs["facts"], "signoffs": [
        {"role": "release_owner", "by": "ana", "at": AT},
        {"role": "safety_lead", "by": "lou", "at": AT}]}
    forged = build_decision(policy=policy_from_dict(inputs["policy"]),
                            judgments=inputs["judgments"], versions=inputs["versions"],
                            facts=facts, settings=inputs["settings"],
                            created_at=record["created_at"])
    assert forged["outcome"] == "pass" and forged["supersedes"] is None
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    code, alone = _verify(db_url, str(path))
    assert code == 0 and alone["chain"].startswith("not checked")  # consistent with itself
    code, out = _verify(db_url, str(path), "--chain")
    assert code == 1 and out["chain"] == "checked"
    assert any("supersedes no decision but carries sign-offs" in p
               for p in out["problems"]), out["problems"]
    # a first record without sign-offs has no chain to check, as before
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(record))
    code, out = _verify(db_url, str(plain))
    assert code == 0 and "chain" not in out
