"""A superseding record must be what a sign-off or returned review labels make of the
record it supersedes: one rebuilt with a looser policy, fewer sign-off rules or an older
metrics version verifies on its own, but is refused when stored and reported by
``hilt gate verify`` of the chain."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import add_reviewer
from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.check import run_check
from hilt.gate.decision import build_decision, verify, with_review_labels
from hilt.gate.policy import policy_from_dict
from hilt.gate.store import sign_off, store_decision, verify_stored
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.gate import GateDecisionRow
from tests.gate.tiny_check import small_suite_policy, stored_counts, tiny_record, write_jsonl

AT = "2026-12-07T16:00:00+00:00"
LINEAGE = {"require_consent": True, "forbid_revoked": True, "forbid_contamination": True,
           "on_unknown": "pass"}


def _rebuilt(parent: dict[str, Any], edit: Any = None, settings: Any = None,
             facts: Any = None) -> dict[str, Any]:
    """A record rebuilt from ``parent``'s inputs with ``build_decision``, superseding it,
    after ``edit`` changed its policy (as a hand-made script would)."""
    inputs = copy.deepcopy(parent["inputs"])
    policy = inputs["policy"]
    if edit is not None:
        edit(policy)
    return build_decision(policy=policy_from_dict(policy), judgments=inputs["judgments"],
                          versions=inputs["versions"], facts=facts or inputs["facts"],
                          settings={**inputs["settings"], **(settings or {})},
                          created_at=AT, supersedes=parent["hash"],
                          review_sample=inputs.get("review_sample"))


def _loosened(policy: dict[str, Any]) -> None:
    """No sign-offs, no lineage rules, every limit raised to 0.99."""
    policy["signoffs"], policy["lineage"] = [], None
    for behaviour in policy["behaviours"]:
        for criterion in behaviour["criteria"]:
            if criterion["kind"] in ("max_delta", "ceiling"):
                criterion["max"] = 0.99


def _one_owner(policy: dict[str, Any]) -> None:
    policy["signoffs"] = [{"role": "release_owner", "count": 1}]


def _blocked(engine: Engine, tmp_path: Path) -> dict[str, Any]:
    """A stored decision that blocks until a release owner and a safety lead sign."""
    record = tiny_record(tmp_path, [{"role": "release_owner"}, {"role": "safety_lead"}])
    record = _rebuilt_with_lineage(record)
    assert record["outcome"] == "block"
    with transaction(engine) as s:
        store_decision(s, record, actor="ci")
    return record


def _rebuilt_with_lineage(record: dict[str, Any]) -> dict[str, Any]:
    policy = {**record["inputs"]["policy"], "lineage": LINEAGE}
    inputs = record["inputs"]
    return build_decision(policy=policy_from_dict(policy), judgments=inputs["judgments"],
                          versions=inputs["versions"], facts=inputs["facts"],
                          settings=inputs["settings"], created_at=record["created_at"])


@pytest.mark.parametrize("forge, field", [
    (lambda p: _rebuilt(p, _loosened), "inputs.policy"),  # no sign-off or lineage rule
    (lambda p: _rebuilt(p, _one_owner), "inputs.policy"),  # one sign-off fewer
    (lambda p: _rebuilt(p, settings={"metrics_version": 1}), "inputs.settings.metrics_version"),
    (lambda p: _rebuilt(p, settings={"alpha": 0.5}), "inputs.settings.alpha"),
])
def test_a_rebuilt_record_cannot_supersede_a_blocked_one(engine: Engine, tmp_path: Path,
                                                         forge: Any, field: str) -> None:
    parent = _blocked(engine, tmp_path)
    forged = forge(parent)
    assert verify(forged).ok  # consistent with itself: only its parent can tell
    before = stored_counts(engine)
    with pytest.raises(InputError) as caught, transaction(engine) as s:
        store_decision(s, forged, actor="mallory")
    assert caught.value.field == "supersedes"
    assert "not derived from the decision it supersedes" in str(caught.value)
    assert field in str(caught.value)
    assert stored_counts(engine) == before


def test_a_forged_file_is_refused_by_gate_update_and_signoff(engine: Engine, db_url: str,
                                                              tmp_path: Path) -> None:
    parent = _blocked(engine, tmp_path)
    forged = _rebuilt(parent, _loosened)
    assert forged["outcome"] == "pass"
    folder = tmp_path / "forged"
    folder.mkdir()
    (folder / "decision.json").write_text(json.dumps(forged))
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="ana", role="lead", may_sign=["release_owner"])
    before = stored_counts(engine)
    runner = CliRunner()
    updated = runner.invoke(app, ["gate", "update", str(folder), "--db", db_url])
    signed = runner.invoke(app, ["gate", "signoff", str(folder), "--role", "release_owner",
                                 "--by", "ana", "--db", db_url])
    for result in (updated, signed):
        assert isinstance(result.exception, InputError), result.output
        assert result.exception.field == "supersedes"
    assert stored_counts(engine) == before


def test_signoffs_and_lineage_may_only_grow(engine: Engine, tmp_path: Path) -> None:
    parent = _blocked(engine, tmp_path)
    facts = copy.deepcopy(parent["inputs"]["facts"])
    # a "re-read" that finds the lineage better than recorded is no re-read
    facts["lineage"] = {"status": "known", "dataset_versions": [
        {"id": "v1", "consented": True, "revoked": False, "contaminated_with": []}]}
    with pytest.raises(InputError, match="inputs.facts.lineage"), transaction(engine) as s:
        store_decision(s, _rebuilt(parent, facts=facts), actor="mallory")
    # a record that adds nothing is no successor either
    with pytest.raises(InputError, match="adds neither"), transaction(engine) as s:
        store_decision(s, _rebuilt(parent), actor="mallory")


def test_real_signoffs_are_stored_and_the_chain_verifies(engine: Engine,
                                                         tmp_path: Path) -> None:
    parent = _blocked(engine, tmp_path)
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="ana", role="lead", may_sign=["release_owner"])
        add_reviewer(s, reviewer_id="bo", role="lead", may_sign=["safety_lead"])
    with transaction(engine) as s:
        sign_off(s, parent["hash"], role="release_owner", signed_by="ana")
    with transaction(engine) as s:
        final = sign_off(s, parent["hash"], role="safety_lead", signed_by="bo")
    with transaction(engine) as s:
        checked = verify_stored(s, final.hash)
    assert final.outcome == "pass" and checked.report.ok, checked.report.problems


def test_verify_reports_a_forged_link_written_past_the_store(engine: Engine, db_url: str,
                                                             tmp_path: Path) -> None:
    parent = _blocked(engine, tmp_path)
    forged = _rebuilt(parent, _loosened)
    with transaction(engine) as s:  # straight into the table, as a database editor might
        s.add(GateDecisionRow(created_at=utcnow(), stored_by="mallory", record=forged,
                              hash=forged["hash"], outcome=forged["outcome"],
                              policy_id=forged["inputs"]["policy"]["id"],
                              policy_version=forged["inputs"]["policy"]["version"],
                              suite_id="s", candidate_id="r", reference_id="r",
                              supersedes=parent["hash"]))
    result = CliRunner().invoke(app, ["gate", "verify", forged["hash"], "--db", db_url])
    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["problems"]
    assert any("supersedes chain" in p and "inputs.policy" in p for p in problems), problems


def test_labels_must_be_the_ones_reviewers_returned(engine: Engine, tmp_path: Path) -> None:
    suite = write_jsonl(tmp_path / "s.jsonl", [
        {"id": f"q{i}", "prompt": f"p{i}", "slice": "x", "expect": "comply"}
        for i in range(6)])
    resp = write_jsonl(tmp_path / "r.jsonl", [
        {"id": f"q{i}", "response": "ok", "judgment": "comply"} for i in range(6)])
    policy = policy_from_dict(small_suite_policy([{"role": "release_owner"}]))
    record = run_check(suite=suite, candidate=resp, reference=resp, out=tmp_path / "o",
                       policy=policy,
                       review={"budget": 2, "rubric": "harm@1", "question": "refusal"}).record
    with transaction(engine) as s:
        store_decision(s, record, actor="ci")
    item = record["inputs"]["review_sample"]["items"][0]["id"]
    made_up = {item: {"judgment": "refuse", "value": "full_refusal", "label_id": "x",
                      "task_id": "t", "provenance": "majority", "confidence": 1.0,
                      "decided_at": AT}}
    forged = with_review_labels(record, made_up, AT)
    assert verify(forged).ok
    with pytest.raises(InputError, match="not the final label") as caught, \
            transaction(engine) as s:
        store_decision(s, forged, actor="mallory")
    assert caught.value.field == "supersedes"
    with transaction(engine) as s:
        count = s.execute(sa.select(sa.func.count()).select_from(GateDecisionRow)).scalar()
    assert count == 1


def test_verify_file_checks_the_chain_only_when_asked(engine: Engine, db_url: str,
                                                      tmp_path: Path) -> None:
    parent = _blocked(engine, tmp_path)
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(_rebuilt(parent, _loosened)))
    runner = CliRunner()
    alone = runner.invoke(app, ["gate", "verify", str(forged), "--db", db_url])
    assert alone.exit_code == 0, alone.output  # the record agrees with itself
    assert json.loads(alone.stdout)["chain"].startswith("not checked")
    chained = runner.invoke(app, ["gate", "verify", str(forged), "--chain", "--db", db_url])
    assert chained.exit_code == 1, chained.output
    out = json.loads(chained.stdout)
    assert out["chain"] == "checked" and not out["ok"]
    assert any("supersedes chain" in p and "inputs.policy" in p for p in out["problems"])
    # a signed successor written to a file verifies with its chain
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="ana", role="lead", may_sign=["release_owner"])
    with transaction(engine) as s:
        signed = dict(sign_off(s, parent["hash"], role="release_owner",
                               signed_by="ana").record)
    good = tmp_path / "signed.json"
    good.write_text(json.dumps(signed))
    ok = runner.invoke(app, ["gate", "verify", str(good), "--chain", "--db", db_url])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["chain"] == "checked"
    # a stored decision's chain is always checked: the option is refused there
    refused = runner.invoke(app, ["gate", "verify", parent["hash"], "--chain", "--db", db_url])
    assert isinstance(refused.exception, InputError), refused.output
    assert refused.exception.field == "--chain"
