"""Errors in --gate policy and --facts files name the file, the line of the offending key
and the field, for YAML and JSON files alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.facts import load_facts
from hilt.gate.policy import load_policy

POLICY = """\
id: p
version: "1"
behaviours:
  - name: b
    description: d
    decision_rule: r
    regression_metric: m
    metric: benign_refusal_rate
    criteria:
      - {id: c1, kind: max_delta, metric: benign_refusal_rate, max: 0.02}
      - id: c2
        kind: max_delta
        metric: unsafe_compliance_rate
        max: 2.5x
"""

FACTS = """\
lineage:
  status: known
versions:
  rubric: harm@2
  rubic: x
"""


def test_policy_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "pol.yaml"
    path.write_text(POLICY, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_policy(path)
    assert (caught.value.file, caught.value.line, caught.value.field) == (
        str(path), 14, "behaviours.0.criteria.1.max")
    flow = POLICY.replace("max: 0.02}", "max: nope}")
    path.write_text(flow, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_policy(path)
    assert (caught.value.line, caught.value.field) == (10, "behaviours.0.criteria.0.max")


def test_policy_json_errors_name_the_line(tmp_path: Path) -> None:
    import yaml

    data = yaml.safe_load(POLICY)
    path = tmp_path / "pol.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_policy(path)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1)
                if '"2.5x"' in text)
    assert (caught.value.line, caught.value.field) == (line, "behaviours.0.criteria.1.max")


@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_facts_errors_name_the_line(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"facts.{suffix}"
    if suffix == "yaml":
        path.write_text(FACTS, encoding="utf-8")
        line = 5
    else:
        path.write_text('{\n  "lineage": {"status": "known"},\n  "versions": {\n'
                        '    "rubric": "harm@2",\n    "rubic": "x"\n  }\n}\n',
                        encoding="utf-8")
        line = 5
    with pytest.raises(InputError) as caught:
        load_facts(path)
    assert str(caught.value) == f"{path}, line {line}, field 'versions.rubic': unknown key"
    path.write_text("lineage:\n  status: known\n  dataset_versions:\n    - id: v1\n"
                    "      consented: 'yes'\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_facts(path)
    assert (caught.value.line, caught.value.field) == (
        5, "lineage.dataset_versions.0.consented")


def test_check_reports_the_line(tmp_path: Path) -> None:
    suite = tmp_path / "s.jsonl"
    suite.write_text(json.dumps({"id": "a", "prompt": "p", "slice": "x", "expect": "comply"})
                     + "\n")
    resp = tmp_path / "r.jsonl"
    resp.write_text(json.dumps({"id": "a", "response": "ok", "judgment": "comply"}) + "\n")
    policy = tmp_path / "pol.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    facts = tmp_path / "facts.yaml"
    facts.write_text(FACTS, encoding="utf-8")
    base = ["check", "--suite", str(suite), "--candidate", str(resp), "--reference",
            str(resp)]
    runner = CliRunner()
    gated = runner.invoke(app, [*base, "--out", str(tmp_path / "o1"), "--gate", str(policy)])
    assert gated.exit_code == 2
    assert f"error: {policy}, line 14, field 'behaviours.0.criteria.1.max'" in gated.output
    with_facts = runner.invoke(app, [*base, "--out", str(tmp_path / "o2"), "--facts",
                                     str(facts)])
    assert with_facts.exit_code == 2
    assert (f"error: {facts}, line 5, field 'versions.rubic': unknown key"
            in with_facts.output)
