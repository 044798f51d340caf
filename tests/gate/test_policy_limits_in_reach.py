"""A limit the bound can never cross makes a criterion that cannot block (``max: 3``
written for 3 points) or that blocks everything; both are refused when the policy is
loaded, naming file, line and field. ``slices: all`` (text, not a list) is refused with
a message that names the field, not a type of the validator."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hilt.errors import InputError
from hilt.evals.check import run_check
from hilt.gate.decision import build_decision, verify
from hilt.gate.policy import load_policy, policy_from_dict
from tests.gate.tiny_check import write_jsonl

BASE = """id: t
version: "1"
behaviours:
  - name: b
    description: d
    metric: benign_refusal_rate
    decision_rule: r
    regression_metric: m
    criteria:
      - {id: c1, metric: benign_refusal_rate, CRITERION}
"""


def _write(tmp_path: Path, criterion: str) -> Path:
    path = tmp_path / "pol.yaml"
    path.write_text(BASE.replace("CRITERION", criterion))
    return path


@pytest.mark.parametrize("criterion, field, effect", [
    ("kind: max_delta, max: 3", "max", "never block"),  # 3 points meant as 0.03
    ("kind: max_delta, bound: ci_high, max: 1.0", "max", "never block"),
    ("kind: max_delta, max: -1.5", "max", "block every candidate"),
    ("kind: ceiling, max: 15", "max", "never block"),
    ("kind: ceiling, bound: ci_high, max: 1", "max", "never block"),
    ("kind: ceiling, max: -0.1", "max", "block every candidate"),
    ("kind: floor, min: 0", "min", "never block"),
    ("kind: floor, bound: ci_low, min: 50", "min", "block every candidate"),
])
def test_a_limit_out_of_reach_is_refused(tmp_path: Path, criterion: str, field: str,
                                         effect: str) -> None:
    path = _write(tmp_path, criterion)
    with pytest.raises(InputError, match=f"out of reach.*would {effect}") as err:
        load_policy(path)
    assert (err.value.file, err.value.line, err.value.field) == (
        str(path), 10, f"behaviours.0.criteria.0.{field}")


@pytest.mark.parametrize("criterion", [
    "kind: max_delta, max: 0.99", "kind: max_delta, max: -1", "kind: max_delta, max: 0",
    "kind: ceiling, max: 0", "kind: ceiling, max: 0.999", "kind: floor, min: 1",
    "kind: floor, min: 0.001",
])
def test_limits_in_reach_load(tmp_path: Path, criterion: str) -> None:
    assert load_policy(_write(tmp_path, criterion)).behaviours[0].criteria[0]


def test_a_recorded_policy_with_such_a_limit_still_recomputes(tmp_path: Path) -> None:
    data = yaml.safe_load(BASE.replace("CRITERION", "kind: ceiling, max: 1.0"))
    policy = policy_from_dict(data, recorded=True)
    suite = write_jsonl(tmp_path / "s.jsonl", [
        {"id": f"q{i}", "prompt": "p", "slice": "x", "expect": "comply"} for i in range(3)])
    resp = write_jsonl(tmp_path / "r.jsonl", [
        {"id": f"q{i}", "response": "r", "judgment": "comply"} for i in range(3)])
    made = run_check(suite=suite, candidate=resp, reference=resp, out=tmp_path / "o").record
    inputs = made["inputs"]
    record = build_decision(policy=policy, judgments=inputs["judgments"],
                            versions=inputs["versions"], facts=inputs["facts"],
                            settings=inputs["settings"], created_at=made["created_at"])
    assert verify(record).ok, verify(record).problems


def test_slices_written_as_text_names_the_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "kind: max_delta, max: 0.03, slices: all")
    with pytest.raises(InputError, match=r"list of slice names \(\[all\]\) or 'each'") as err:
        load_policy(path)
    assert (err.value.line, err.value.field) == (10, "behaviours.0.criteria.0.slices")
    assert load_policy(_write(tmp_path, "kind: max_delta, max: 0.03, slices: each"))
