"""The built-in policy does not pass without safety evidence (no unsafe prompts, too few
prompts); fields a criterion's kind never reads are refused when the policy is loaded,
naming file, line and field; a criterion without slices judges its behaviour's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.check import run_check
from hilt.gate.decision import build_decision, verify
from hilt.gate.policy import DEFAULT_MIN_N, default_policy, load_policy, policy_from_dict
from tests.gate.tiny_check import write_jsonl


def _run(tmp_path: Path, rows: list[tuple[str, str]]) -> dict:
    """The built-in policy on a suite of ``(expect, judgment)`` rows, both systems alike."""
    suite = write_jsonl(tmp_path / "s.jsonl", [
        {"id": f"q{i}", "prompt": f"p{i}", "slice": "x", "expect": e}
        for i, (e, _) in enumerate(rows)])
    resp = write_jsonl(tmp_path / "r.jsonl", [
        {"id": f"q{i}", "response": "r", "judgment": j} for i, (_, j) in enumerate(rows)])
    return run_check(suite=suite, candidate=resp, reference=resp, out=tmp_path / "o").record


def test_the_built_in_policy_blocks_without_safety_evidence(tmp_path: Path) -> None:
    one = _run(tmp_path, [("comply", "comply")])  # one safe prompt, no unsafe one
    assert one["outcome"] == "block"
    status = {c["id"]: c["status"] for c in one["decision"]["criteria"]}
    assert status == {"benign_refusal_significant_increase": "too_few",
                      "benign_refusal_point_increase": "too_few",
                      "unsafe_compliance_significant_increase": "no_data",
                      "unsafe_compliance_point_increase": "no_data"}
    assert any(f"needs at least {DEFAULT_MIN_N}" in r for r in one["decision"]["reasons"])
    enough = _run(tmp_path, [("comply", "comply")] * DEFAULT_MIN_N
                  + [("refuse", "refuse")] * DEFAULT_MIN_N)
    assert enough["outcome"] == "pass", enough["decision"]["reasons"]


def test_default_policy_command_prints_the_evidence_rules() -> None:
    printed = yaml.safe_load(CliRunner().invoke(app, ["gate", "default-policy"]).stdout)
    criteria = [c for b in printed["behaviours"] for c in b["criteria"]]
    assert all(c["min_n"] == DEFAULT_MIN_N and c["on_no_data"] == "block" for c in criteria)
    assert policy_from_dict(printed) == default_policy()


def test_a_policy_without_min_n_keeps_its_hash() -> None:
    policy = default_policy().as_dict()
    for behaviour in policy["behaviours"]:
        for criterion in behaviour["criteria"]:
            del criterion["min_n"]
    assert "min_n" not in json.dumps(policy_from_dict(policy).as_dict())


BASE = """id: t
version: "1"
behaviours:
  - name: b
    description: d
    metric: benign_refusal_rate
    decision_rule: r
    regression_metric: m
    criteria:
      - {CRITERION}
"""


@pytest.mark.parametrize("criterion, field", [
    ("{id: c1, kind: significant_increase, metric: benign_refusal_rate, bound: ci_high, "
     "max: 0.0}", "bound"),
    ("{id: c1, kind: ceiling, metric: benign_refusal_rate, max: 1.0, min: 0.9}", "min"),
    ("{id: c1, kind: max_delta, metric: benign_refusal_rate, side: reference, max: 0.5}",
     "side"),
    ("{id: c1, kind: floor, metric: benign_refusal_rate, min: 0.1, max: 0.5}", "max"),
    ("{id: c1, kind: max_delta, metric: benign_refusal_rate, max: 0.1, alpha: 0.01}",
     "alpha"),
    ("{id: c1, kind: ceiling, metric: benign_refusal_rate, max: 0.1, correction: none}",
     "correction"),
])
def test_a_field_the_kind_never_reads_is_refused(tmp_path: Path, criterion: str,
                                                 field: str) -> None:
    path = tmp_path / "pol.yaml"
    path.write_text(BASE.replace("{CRITERION}", criterion))
    with pytest.raises(InputError, match="does not apply") as err:
        load_policy(path)
    assert (err.value.file, err.value.line, err.value.field) == (
        str(path), 10, f"behaviours.0.criteria.0.{field}")


def test_a_recorded_policy_is_read_as_it_was_made(tmp_path: Path) -> None:
    """A record made before the check (with an ignored field) still recomputes."""
    data = yaml.safe_load(BASE.replace(
        "{CRITERION}", "{id: c1, kind: max_delta, metric: benign_refusal_rate, max: 0.5, "
        "side: reference}"))
    with pytest.raises(InputError):
        policy_from_dict(data)
    policy = policy_from_dict(data, recorded=True)
    made = _run(tmp_path, [("comply", "comply")] * 3)
    inputs = made["inputs"]
    record = build_decision(policy=policy, judgments=inputs["judgments"],
                            versions=inputs["versions"], facts=inputs["facts"],
                            settings=inputs["settings"], created_at=made["created_at"])
    assert verify(record).ok, verify(record).problems


def test_a_criterion_without_slices_judges_its_behaviours(tmp_path: Path) -> None:
    path = tmp_path / "pol.yaml"
    path.write_text(BASE.replace("    metric: benign_refusal_rate\n",
                                 "    metric: benign_refusal_rate\n    slices: [chem_typo]\n",
                                 1).replace("{CRITERION}", "{id: c1, kind: ceiling, metric: "
                                            "benign_refusal_rate, max: 0.5}"))
    assert load_policy(path).behaviours[0].criteria[0].slices == ["chem_typo"]
    made = _run(tmp_path, [("comply", "comply")] * 3)
    inputs = made["inputs"]
    record = build_decision(policy=load_policy(path), judgments=inputs["judgments"],
                            versions=inputs["versions"], facts=inputs["facts"],
                            settings=inputs["settings"], created_at=made["created_at"])
    (criterion,) = record["decision"]["criteria"]
    assert (criterion["slice"], criterion["status"]) == ("chem_typo", "unknown_slice")
    assert record["outcome"] == "block"


def test_a_repeated_key_names_its_own_field(tmp_path: Path) -> None:
    path = tmp_path / "pol.yaml"
    path.write_text(BASE.replace("{CRITERION}", "{id: c1, kind: max_delta, metric: "
                                 "benign_refusal_rate, max: 0.0, max: 0.9}"))
    with pytest.raises(InputError, match="key 'max' repeats") as err:
        load_policy(path)
    assert (err.value.line, err.value.field) == (10, "behaviours.0.criteria.0.max")
