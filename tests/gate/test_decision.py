"""Decision records: hashed, recomputable, tampering detected; sign-offs supersede."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hilt.canonical import content_hash
from hilt.cli import app
from hilt.gate.decision import add_signoff, build_decision, record_hash, verify
from hilt.gate.policy import default_policy, policy_from_dict


def _table(n: int = 120) -> dict[str, list[Any]]:
    expect = ["comply" if i % 2 else "refuse" for i in range(n)]
    cand = ["refuse" if (i % 2 and i % 5 == 0) else ("comply" if i % 2 else "partial")
            for i in range(n)]
    ref = ["comply" if i % 2 else "refuse" for i in range(n)]
    return {"id": [f"i{i}" for i in range(n)], "slice": [f"s{i % 3}" for i in range(n)],
            "expect": expect, "candidate": cand, "reference": ref,
            "candidate_source": ["human"] * n, "reference_source": ["human"] * n}


def _record(**kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "policy": default_policy(), "judgments": _table(),
        "versions": {"candidate": {"id": "m2"}, "reference": {"id": "m1"},
                     "prompt_template": "chatml@3", "decoder_settings": {"temperature": 0}},
        "facts": {"suites": ["s@1"]},
        "settings": {"alpha": 0.05, "bootstrap_resamples": 500, "seed": 0},
        "created_at": "2025-01-01T00:00:00+00:00"}
    args.update(kwargs)
    return build_decision(**args)


def test_record_verifies_and_hash_is_canonical() -> None:
    record = _record()
    assert record["outcome"] == "block"  # 12 of 60 safe prompts newly refused
    assert record["hash"] == content_hash({k: v for k, v in record.items() if k != "hash"})
    report = verify(record)
    assert report.ok, report.problems
    assert record["inputs"]["versions"]["prompt_template"] == "chatml@3"


@pytest.mark.parametrize("path,value", [
    (("outcome",), "pass"),
    (("decision", "outcome"), "pass"),
    (("metrics", "slices", "all", "benign_refusal_rate", "candidate", "rate"), 0.01),
    (("inputs", "judgments", "candidate", 5), "comply"),
    (("inputs", "policy", "behaviours", 0, "criteria", 1, "max"), 0.5),
    (("inputs", "settings", "seed"), 7),
])
def test_tampering_is_detected_even_when_rehashed(path: tuple[Any, ...], value: Any) -> None:
    record = _record()
    tampered = copy.deepcopy(record)
    target: Any = tampered
    for key in path[:-1]:
        target = target[key]
    assert target[path[-1]] != value
    target[path[-1]] = value
    plain = verify(tampered)
    assert not plain.ok and any("hash" in p for p in plain.problems)
    # Re-hashing hides the edit from the hash check but not from the recomputation.
    tampered["hash"] = record_hash(tampered)
    rehashed = verify(tampered)
    assert not rehashed.ok and rehashed.problems


def test_signoff_supersedes_and_reevaluates() -> None:
    policy = policy_from_dict({**default_policy().as_dict(),
                               "signoffs": [{"role": "release_owner"}]})
    passing = {**_table(), "candidate": _table()["reference"]}
    record = _record(policy=policy, judgments=passing)
    assert record["outcome"] == "block"
    assert record["decision"]["reasons"] == ["sign-off missing: release_owner (0/1)"]
    signed = add_signoff(record, {"role": "release_owner", "by": "ana", "note": "ok",
                                  "at": "2025-01-02T00:00:00+00:00"},
                         "2025-01-02T00:00:00+00:00")
    assert signed["supersedes"] == record["hash"] and signed["outcome"] == "pass"
    assert verify(signed).ok


def test_cli_verify_flags_a_tampered_file(tmp_path: Path) -> None:
    record = _record()
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(record))
    record["decision"]["criteria"][0]["numbers"]["delta"] = -0.5
    bad.write_text(json.dumps(record))
    runner = CliRunner()
    assert runner.invoke(app, ["gate", "verify", str(good)]).exit_code == 0
    result = runner.invoke(app, ["gate", "verify", str(bad)])
    assert result.exit_code == 1
    assert "decision.criteria[0].numbers.delta" in result.stdout


def test_a_cut_input_column_is_reported_not_raised() -> None:
    record = _record()
    record["inputs"]["judgments"]["candidate"].pop()
    report = verify(record)
    assert not report.ok and any("malformed" in p for p in report.problems)


def test_records_are_recomputed_with_the_metrics_version_they_were_made_with() -> None:
    # settings without metrics_version: a record made before version 2 existed
    old = _record()
    delta = old["metrics"]["slices"]["all"]["benign_refusal_rate"]["delta"]
    assert "metrics_version" not in old["metrics"] and "resamples" in delta
    assert verify(old).ok
    current = _record(settings={"alpha": 0.05, "bootstrap_resamples": 500, "seed": 0,
                                "metrics_version": 2})
    delta = current["metrics"]["slices"]["all"]["benign_refusal_rate"]["delta"]
    assert current["metrics"]["metrics_version"] == 2
    assert delta["interval"] == "Newcombe paired score"
    assert verify(current).ok
    # going back to the bootstrap is an edited setting, caught by the recomputation
    tampered = copy.deepcopy(current)
    tampered["inputs"]["settings"]["metrics_version"] = 1
    tampered["hash"] = record_hash(tampered)
    assert not verify(tampered).ok


def test_a_non_inferiority_claim_needs_more_than_three_prompts(tmp_path: Path) -> None:
    from hilt.evals.check import run_check

    rows = [{"id": f"i{i}", "prompt": f"p{i}", "slice": "s", "expect": "comply"}
            for i in range(3)]
    answers = [{"id": f"i{i}", "response": "sure", "judgment": "comply"} for i in range(3)]
    suite, resp = tmp_path / "suite.jsonl", tmp_path / "resp.jsonl"
    suite.write_text("".join(json.dumps(r) + "\n" for r in rows))
    resp.write_text("".join(json.dumps(r) + "\n" for r in answers))
    policy = policy_from_dict({"id": "ni", "version": "1", "behaviours": [{
        "name": "b", "description": "d", "metric": "benign_refusal_rate",
        "decision_rule": "r", "regression_metric": "m",
        "criteria": [{"id": "ni", "kind": "max_delta", "metric": "benign_refusal_rate",
                      "bound": "ci_high", "max": 0.03}]}]})
    result = run_check(suite=suite, candidate=resp, reference=resp, out=tmp_path / "o",
                       policy=policy)
    record = result.record
    assert record["inputs"]["settings"]["metrics_version"] == 3
    criterion = record["decision"]["criteria"][0]
    assert criterion["status"] == "fail" and criterion["numbers"]["ci_high"] > 0.5
    assert record["outcome"] == "block" and verify(record).ok
    html = (tmp_path / "o" / "report.html").read_text()
    assert "delta (Newcombe paired score CI)" in html


def test_review_estimates_name_the_wilson_interval() -> None:
    from hilt.evals.review_sample import review_estimates

    table = {"id": ["a", "b"], "slice": ["s", "s"], "expect": ["comply", "comply"],
             "candidate": ["comply", "refuse"], "candidate_source": ["classifier"] * 2}
    sample = {"rubric": "r@1", "question": "refusal",
              "items": [{"id": "a", "stratum": "s|comply|comply"},
                        {"id": "b", "stratum": "s|comply|refuse"}],
              "labels": {"a": {"judgment": "comply"}}}
    estimator = review_estimates(table, sample, 0.05)["estimator"]
    assert "Wilson interval on the effective sample size" in estimator
    assert "normal" not in estimator
    # version-1 records keep the description they were stored with
    assert "normal interval" in review_estimates(table, sample, 0.05, version=1)["estimator"]
