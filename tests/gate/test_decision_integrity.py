"""What a decision may claim: sign-offs only as recorded, inputs only as in their files,
each signer for one role; and how the gate commands treat records that are not sound."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import add_reviewer
from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.check import run_check
from hilt.gate.decision import add_signoff, build_decision, verify
from hilt.gate.evaluate import evaluate_signoffs
from hilt.gate.policy import policy_from_dict
from hilt.gate.store import CountsForNothing, sign_off, store_decision
from hilt.store.db import transaction
from hilt.store.tables.gate import GateDecisionRow
from tests.gate.tiny_check import small_suite_policy

TWO_ROLES = [{"role": "release_owner"}, {"role": "safety_lead"}]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _files(tmp_path: Path, regress: bool = False) -> dict[str, Path]:
    """``regress``: the candidate refuses three safe prompts the reference answers."""
    suite = _write(tmp_path / "s.jsonl", [
        {"id": f"q{i}", "prompt": f"p{i}", "slice": "x",
         "expect": "comply" if i < 6 else "refuse"} for i in range(10)])
    cand = _write(tmp_path / "c.jsonl", [
        {"id": f"q{i}", "response": "r",
         "judgment": "refuse" if i >= (3 if regress else 6) else "comply"}
        for i in range(10)])
    ref = _write(tmp_path / "r.jsonl", [
        {"id": f"q{i}", "response": "r", "judgment": "comply" if i < 6 else "refuse"}
        for i in range(10)])
    return {"suite": suite, "cand": cand, "ref": ref}


def _policy(signoffs: list[dict[str, Any]]) -> Any:
    return policy_from_dict({**small_suite_policy(), "signoffs": signoffs})


def _check(tmp_path: Path, signoffs: list[dict[str, Any]], regress: bool = False,
           **kw: Any) -> dict[str, Any]:
    files = _files(tmp_path, regress)
    return run_check(suite=files["suite"], candidate=files["cand"], reference=files["ref"],
                     out=tmp_path / "o", policy=_policy(signoffs), **kw).record


def _rebuild(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    inputs = json.loads(json.dumps(record["inputs"]))
    args = {"policy": policy_from_dict(inputs["policy"]), "judgments": inputs["judgments"],
            "versions": inputs["versions"], "facts": inputs["facts"],
            "settings": inputs["settings"], "created_at": record["created_at"]}
    return build_decision(**{**args, **changes})


def _leads(engine: Engine, *ids: str) -> None:
    with transaction(engine) as s:
        for rid in ids:
            add_reviewer(s, reviewer_id=rid, role="lead",
                         may_sign=["release_owner", "safety_lead"])


def test_store_refuses_signoffs_without_their_recorded_rows(engine: Engine,
                                                            tmp_path: Path) -> None:
    record = _check(tmp_path, [{"role": "release_owner"}])
    assert record["outcome"] == "block"
    # a root record typed with a sign-off, and a successor with one no row records
    typed = _rebuild(record, facts={**record["inputs"]["facts"],
                                    "signoffs": [{"role": "release_owner", "by": "mallory"}]})
    assert verify(typed).ok and typed["outcome"] == "pass"
    with pytest.raises(InputError, match="never recorded") as caught, \
            transaction(engine) as s:
        store_decision(s, typed, actor="ci")
    assert caught.value.field == "inputs.facts.signoffs"
    _leads(engine, "ana")
    with transaction(engine) as s:
        first = store_decision(s, record, actor="ci").hash
    forged = add_signoff(record, {"role": "release_owner", "by": "ana", "note": "",
                                  "at": "2025-01-01T00:00:00+00:00"},
                         "2025-01-01T00:00:00+00:00")
    with pytest.raises(InputError, match="never recorded"), transaction(engine) as s:
        store_decision(s, forged, actor="mallory")
    # the recorded sign-off goes in, and a later record carrying it forward still does
    with transaction(engine) as s:
        signed = sign_off(s, first, role="release_owner", signed_by="ana")
        assert signed.outcome == "pass"
        again = add_signoff(signed.record, {"role": "release_owner", "by": "ana",
                                            "note": "", "at": "2025-01-02T00:00:00+00:00"},
                            "2025-01-02T00:00:00+00:00")
    with pytest.raises(InputError, match="never recorded"), transaction(engine) as s:
        store_decision(s, again, actor="ana")  # one row backs one sign-off, not two


def test_one_person_counts_toward_one_required_role(engine: Engine, tmp_path: Path) -> None:
    policy = _policy([{"role": "release_owner", "count": 2}, {"role": "safety_lead"}])
    both = {"signoffs": [{"role": "release_owner", "by": "L1"},
                         {"role": "safety_lead", "by": "L1"}]}
    assert evaluate_signoffs(_policy(TWO_ROLES), both)["status"] == "block"
    # people go where they are needed: L1 signed both, L2 only as owner
    two = {"signoffs": [*both["signoffs"], {"role": "release_owner", "by": "L2"}]}
    assert evaluate_signoffs(_policy(TWO_ROLES), two)["status"] == "pass"
    assert evaluate_signoffs(policy, two)["missing"] in (
        [{"role": "release_owner", "needed": 2, "have": 1}],
        [{"role": "safety_lead", "needed": 1, "have": 0}])
    # records made before the rule recompute with the old count
    assert evaluate_signoffs(_policy(TWO_ROLES), both,
                             one_role_per_person=False)["status"] == "pass"
    record = _check(tmp_path, TWO_ROLES)
    assert record["inputs"]["settings"]["signoff_rule"] == "one_role_per_person"
    _leads(engine, "L1")
    with transaction(engine) as s:
        first = store_decision(s, record, actor="ci").hash
        signed = sign_off(s, first, role="release_owner", signed_by="L1")
        assert signed.outcome == "block"
        assert "sign-off missing: safety_lead (0/1)" in signed.record["decision"]["reasons"]
    # L1 counts as release_owner already: a second role would fill nothing, so it is refused
    with pytest.raises(CountsForNothing, match="L1 already counts toward release_owner"), \
            transaction(engine) as s:
        sign_off(s, first, role="safety_lead", signed_by="L1")
    # a role the policy does not ask for is refused, not silently recorded
    with pytest.raises(InputError, match="requires no 'safety' sign-off") as caught, \
            transaction(engine) as s:
        sign_off(s, first, role="safety", signed_by="L1")
    assert caught.value.field == "--role"


def test_verify_inputs_and_signoff_catch_a_rebuilt_record(db_url: str, engine: Engine,
                                                          tmp_path: Path) -> None:
    record = _check(tmp_path, [], regress=True)
    assert record["outcome"] == "block"
    forged = _rebuild(record, judgments={**record["inputs"]["judgments"],
                                         "candidate": record["inputs"]["judgments"]
                                         ["reference"]})
    assert verify(forged).ok and forged["outcome"] == "pass"
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    runner = CliRunner()
    plain = runner.invoke(app, ["gate", "verify", str(path)])
    assert plain.exit_code == 0  # consistent with itself: all verify alone can say
    checked = runner.invoke(app, ["gate", "verify", str(path), "--inputs"])
    assert checked.exit_code == 1, checked.output
    report = json.loads(checked.stdout)
    assert not report["ok"] and "inputs.judgments.candidate" in report["inputs"]["problems"][0]
    honest = runner.invoke(app, ["gate", "verify", str(tmp_path / "o" / "decision.json"),
                                 "--inputs"])
    assert honest.exit_code == 0, honest.output
    _leads(engine, "ana")
    stored = runner.invoke(app, ["gate", "signoff", str(path), "--role", "release_owner",
                                 "--by", "ana", "--db", db_url])
    # refused before any sign-off rule is looked at: the file does not match its inputs
    assert isinstance(stored.exception, InputError), stored.output
    assert stored.exception.field == "inputs"
    with transaction(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(GateDecisionRow)
                         ).scalar() == 0


def test_a_changed_input_file_fails_verify_inputs(tmp_path: Path) -> None:
    record = _check(tmp_path, [])
    (tmp_path / "c.jsonl").write_text((tmp_path / "c.jsonl").read_text() + "\n")
    result = CliRunner().invoke(app, ["gate", "verify", str(tmp_path / "o" / "decision.json"),
                                      "--inputs"])
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["inputs"]["problems"]
    assert "candidate file changed since the check" in problems[0]
    assert record["inputs"]["versions"]["candidate"]["path"] == str(tmp_path / "c.jsonl")


def test_storing_a_file_rechecks_a_registered_suite_id(db_url: str, engine: Engine,
                                                       tmp_path: Path) -> None:
    _check(tmp_path, [{"role": "release_owner"}], suite_id="xstest@1")  # no database
    _leads(engine, "ana")
    result = CliRunner().invoke(app, ["gate", "signoff", str(tmp_path / "o" / "decision.json"),
                                      "--role", "release_owner", "--by", "ana",
                                      "--db", db_url])
    assert isinstance(result.exception, InputError), result.output
    assert "not registered" in str(result.exception)


def test_signoff_out_rewrites_the_whole_report_folder(db_url: str, engine: Engine,
                                                      tmp_path: Path) -> None:
    _check(tmp_path, [{"role": "release_owner"}])
    out = tmp_path / "o"
    assert json.loads((out / "report.json").read_text())["outcome"] == "block"
    _leads(engine, "ana")
    result = CliRunner().invoke(app, ["gate", "signoff", str(out / "decision.json"), "--role",
                                      "release_owner", "--by", "ana", "--out",
                                      str(out / "decision.json"), "--db", db_url])
    assert result.exit_code == 0, result.output
    decision = json.loads((out / "decision.json").read_text())
    report = json.loads((out / "report.json").read_text())
    assert decision["outcome"] == report["outcome"] == "pass"
    assert report["decision_hash"] == decision["hash"]
    assert ">PASS<" in (out / "report.html").read_text()


def test_show_refuses_a_file_that_is_not_a_decision(tmp_path: Path) -> None:
    path = tmp_path / "notdec.json"
    path.write_text('{"a": 1}')
    result = CliRunner().invoke(app, ["gate", "show", str(path)])
    assert isinstance(result.exception, InputError), result.output
    assert result.exception.file == str(path) and result.exception.exit_code == 2


def test_verify_reports_an_unreadable_policy_as_a_problem(tmp_path: Path) -> None:
    record = _check(tmp_path, [])
    record["inputs"]["policy"]["behaviours"] = None
    path = tmp_path / "t.json"
    path.write_text(json.dumps(record))
    result = CliRunner().invoke(app, ["gate", "verify", str(path)])
    assert result.exit_code == 1, result.output
    assert "record malformed" in json.loads(result.stdout)["problems"][-1]


def test_facts_file_signoffs_name_their_line(tmp_path: Path) -> None:
    files = _files(tmp_path)
    facts = tmp_path / "facts.yaml"
    facts.write_text(yaml.safe_dump({"versions": {"rubric": "r@1"},
                                     "signoffs": [{"role": "release_owner",
                                                   "by": "mallory"}]}, sort_keys=False))
    with pytest.raises(InputError, match="hilt gate signoff") as caught:
        run_check(suite=files["suite"], candidate=files["cand"], reference=files["ref"],
                  out=tmp_path / "o", facts=facts)
    assert (caught.value.file, caught.value.line, caught.value.field) == (
        str(facts), 3, "signoffs")
    assert not (tmp_path / "o").exists()
