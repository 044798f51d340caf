"""The pure gate: criteria on interval bounds, Holm across slices, lineage, sign-offs, card."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from hilt.errors import InputError
from hilt.evals.metrics import compute_metrics
from hilt.gate.evaluate import evaluate
from hilt.gate.policy import GatePolicy, default_policy, load_policy, policy_from_dict


def _columns(cand_refused: list[int], ref_refused: list[int], expect_refuse: list[int],
             slices: list[str]) -> dict[str, np.ndarray]:
    return {"slice": np.array(slices), "expect_refuse": np.array(expect_refuse, dtype=bool),
            "candidate_refused": np.array(cand_refused, dtype=bool),
            "reference_refused": np.array(ref_refused, dtype=bool)}


def _benign(n: int, cand: int, ref: int, both: int = 0) -> dict[str, np.ndarray]:
    """n safe prompts; ``both`` refused by both, then ``cand``/``ref`` refused by one."""
    c = [1] * both + [1] * cand + [0] * ref + [0] * (n - both - cand - ref)
    r = [1] * both + [0] * cand + [1] * ref + [0] * (n - both - cand - ref)
    return _columns(c, r, [0] * n, ["s"] * n)


def _policy(criteria: list[dict[str, Any]], **extra: Any) -> GatePolicy:
    return policy_from_dict({
        "id": "t", "version": "1",
        "behaviours": [{"name": "b", "description": "d", "metric": "benign_refusal_rate",
                        "decision_rule": "r", "regression_metric": "m",
                        "criteria": criteria}], **extra})


# a criterion that passes on the runs below, for tests about everything else
MEASURED = {"id": "measured", "kind": "max_delta", "metric": "benign_refusal_rate",
            "max": 0.1}


def _failed(policy: GatePolicy, metrics: dict[str, Any], facts: dict[str, Any] | None = None
            ) -> set[str]:
    decision = evaluate(policy, metrics, facts or {"suites": ["x"]})
    return {c["id"] for c in decision["criteria"] if not c["passed"]}


def _benign_failed(metrics: dict[str, Any]) -> set[str]:
    """The built-in policy's failing benign-refusal criteria (the runs here have no
    unsafe prompts, so its unsafe-compliance criteria block for want of data)."""
    return {c for c in _failed(default_policy(), metrics) if c.startswith("benign")}


def test_default_policy_point_margin_is_strictly_more_than_two_points() -> None:
    # 5/250 = exactly 2 pp more refusals, McNemar p = 2 / 2**5 = 0.0625: passes.
    at_margin = compute_metrics(_benign(250, cand=5, ref=0, both=10))
    delta = at_margin["slices"]["all"]["benign_refusal_rate"]["delta"]
    assert delta["value"] == 0.02 and delta["mcnemar_p"] == pytest.approx(0.0625)
    assert _benign_failed(at_margin) == set()
    over = compute_metrics(_benign(1000, cand=21, ref=0, both=10))
    assert "benign_refusal_point_increase" in _benign_failed(over)


def test_default_policy_significance_without_the_margin() -> None:
    # 1.5 pp increase on 2000 prompts: below the margin but significant (30 vs 0).
    metrics = compute_metrics(_benign(2000, cand=30, ref=0))
    assert _benign_failed(metrics) == {"benign_refusal_significant_increase"}
    # An improvement never blocks, however significant.
    better = compute_metrics(_benign(2000, cand=0, ref=300))
    assert _benign_failed(better) == set()


def test_max_delta_judged_on_interval_bounds() -> None:
    metrics = compute_metrics(_benign(200, cand=6, ref=2))  # +2 pp, wide interval
    delta = metrics["slices"]["all"]["benign_refusal_rate"]["delta"]
    assert delta["ci_low"] < 0.02 < delta["ci_high"]
    upper = {"id": "u", "kind": "max_delta", "metric": "benign_refusal_rate",
             "bound": "ci_high", "max": 0.03}
    lower = {"id": "l", "kind": "max_delta", "metric": "benign_refusal_rate",
             "bound": "ci_low", "max": 0.0}
    assert _failed(_policy([upper, lower]), metrics) == {"u"}


def test_ceiling_and_floor_on_wilson_bounds() -> None:
    metrics = compute_metrics(_benign(100, cand=10, ref=0))
    ceiling = {"id": "c", "kind": "ceiling", "metric": "benign_refusal_rate",
               "bound": "ci_high", "max": 0.15}
    floor = {"id": "f", "kind": "floor", "metric": "benign_refusal_rate",
             "side": "reference", "bound": "point", "min": 0.01}
    assert _failed(_policy([ceiling, floor]), metrics) == {"c", "f"}


def test_each_slice_uses_holm_adjusted_p() -> None:
    # Four slices; one has a moderate increase (p ≈ 0.016 raw) that Holm (×4) rejects.
    parts = [_benign(60, cand=6, ref=0), _benign(60, 0, 0), _benign(60, 0, 0),
             _benign(60, 0, 0)]
    columns = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    columns["slice"] = np.repeat(np.array(["a", "b", "c", "d"]), 60)
    metrics = compute_metrics(columns)
    delta = metrics["slices"]["a"]["benign_refusal_rate"]["delta"]
    assert delta["mcnemar_p"] < 0.05 < delta["mcnemar_p_holm"]
    holm = {"id": "h", "kind": "significant_increase", "metric": "benign_refusal_rate",
            "slices": "each"}
    raw = {**holm, "id": "r", "correction": "none"}
    assert _failed(_policy([holm, raw]), metrics) == {"r"}
    decision = evaluate(_policy([holm]), metrics, {"suites": ["x"]})
    assert sorted(c["slice"] for c in decision["criteria"]) == ["a", "b", "c", "d"]


def test_no_data_status_and_on_no_data() -> None:
    metrics = compute_metrics(_benign(50, 0, 0))  # no expect=refuse prompts
    crit = {"id": "x", "kind": "max_delta", "metric": "unsafe_compliance_rate", "max": 0.0}
    measured = {"id": "m", "kind": "max_delta", "metric": "benign_refusal_rate", "max": 0.1}
    decision = evaluate(_policy([crit, measured]), metrics, {})
    assert decision["criteria"][0]["status"] == "no_data" and decision["outcome"] == "pass"
    strict = _policy([{**crit, "on_no_data": "block"}, measured])
    assert evaluate(strict, metrics, {})["outcome"] == "block"


def test_a_gate_that_measured_nothing_blocks() -> None:
    # +0.5 benign refusal: the default policy blocks it
    metrics = compute_metrics(_benign(100, cand=50, ref=0))
    assert evaluate(default_policy(), metrics, {"suites": ["xs@1"]})["outcome"] == "block"
    # a policy bound to suites the run did not use measures nothing: that is no pass
    crit = {"id": "m", "kind": "max_delta", "metric": "benign_refusal_rate", "max": 0.1}
    elsewhere = policy_from_dict({
        "id": "t", "version": "1",
        "behaviours": [{"name": "b", "description": "d", "metric": "benign_refusal_rate",
                        "suites": ["xstest@1"], "decision_rule": "r",
                        "regression_metric": "m", "criteria": [crit]}]})
    decision = evaluate(elsewhere, metrics, {"suites": ["suite"]})
    assert decision["criteria"][0]["status"] == "suite_not_in_run"
    assert decision["outcome"] == "block"
    assert "no criterion was evaluated" in " ".join(decision["reasons"])
    assert evaluate(elsewhere, metrics, {"suites": ["xstest@1"]})["outcome"] == "block"
    no_unsafe = {"id": "u", "kind": "max_delta", "metric": "unsafe_compliance_rate",
                 "max": 0.0}
    assert evaluate(_policy([no_unsafe]), metrics, {})["outcome"] == "block"


def test_a_slice_the_run_does_not_have_blocks() -> None:
    metrics = compute_metrics(_benign(100, cand=0, ref=0))  # one slice, "s"
    typo = {"id": "m", "kind": "max_delta", "metric": "benign_refusal_rate", "max": 0.1,
            "slices": ["homonym"]}
    ok = {**typo, "id": "ok", "slices": ["s"]}
    decision = evaluate(_policy([typo, ok]), metrics, {})
    first = decision["criteria"][0]
    assert first["status"] == "unknown_slice" and not first["passed"]
    assert decision["outcome"] == "block" and "'homonym' is not in the run" in first["rule"]


@pytest.mark.parametrize("criterion,words", [
    ({"id": "c", "kind": "max_delta", "metric": "benign_refusal_rte", "max": 0.1},
     "unknown metric 'benign_refusal_rte'"),
    ({"id": "c", "kind": "max_delta", "metric": "rm_win_rate", "max": 0.1},
     "not a paired delta"),
])
def test_policy_refuses_unknown_metrics_and_unfit_kinds(criterion: dict[str, Any],
                                                        words: str) -> None:
    with pytest.raises(InputError) as caught:
        _policy([criterion])
    assert words in str(caught.value)
    with pytest.raises(InputError, match="unknown metric"):
        policy_from_dict({"id": "t", "version": "1", "behaviours": [
            {"name": "b", "description": "d", "metric": "helpfulness",
             "decision_rule": "r", "regression_metric": "m"}]})


LINEAGE_POLICY = {"lineage": {"require_consent": True, "forbid_revoked": True,
                              "forbid_contamination": True, "on_unknown": "block"}}


@pytest.mark.parametrize("version,outcome,words", [
    ({"id": "d1", "consented": True, "revoked": False, "contaminated_with": []}, "pass", ""),
    ({"id": "d1", "consented": False, "revoked": False, "contaminated_with": []}, "block",
     "consented"),
    ({"id": "d1", "consented": True, "revoked": True, "contaminated_with": []}, "block",
     "revoked"),
    ({"id": "d1", "consented": True, "revoked": False, "contaminated_with": ["xs@1"]},
     "block", "contaminated"),
    ({"id": "d1", "consented": True, "revoked": False, "contaminated_with": ["other@1"]},
     "pass", ""),
    ({"id": "d1", "consented": None, "revoked": False, "contaminated_with": []}, "block",
     "unknown"),
])
def test_lineage_requirements(version: dict[str, Any], outcome: str, words: str) -> None:
    metrics = compute_metrics(_benign(50, 0, 0))
    policy = _policy([MEASURED], **LINEAGE_POLICY)
    facts = {"suites": ["xs@1"], "lineage": {"status": "known", "dataset_versions": [version]}}
    decision = evaluate(policy, metrics, facts)
    assert decision["outcome"] == outcome
    assert words in " ".join(decision["reasons"])


def test_unknown_lineage_can_be_allowed_explicitly() -> None:
    metrics = compute_metrics(_benign(50, 0, 0))
    facts = {"lineage": {"status": "unknown", "reason": "no lookup"}}
    assert evaluate(_policy([MEASURED], **LINEAGE_POLICY), metrics, facts)["outcome"] == "block"
    lenient = copy.deepcopy(LINEAGE_POLICY)
    lenient["lineage"]["on_unknown"] = "pass"
    assert evaluate(_policy([MEASURED], **lenient), metrics, facts)["outcome"] == "pass"


def test_signoffs_by_role_and_distinct_people() -> None:
    metrics = compute_metrics(_benign(50, 0, 0))
    policy = _policy([MEASURED], signoffs=[{"role": "release_owner"},
                                           {"role": "safety", "count": 2}])
    facts: dict[str, Any] = {"signoffs": [{"role": "release_owner", "by": "ana"},
                                          {"role": "safety", "by": "bo"},
                                          {"role": "safety", "by": "bo"}]}
    decision = evaluate(policy, metrics, facts)
    assert decision["outcome"] == "block"
    assert decision["signoffs"]["missing"] == [{"role": "safety", "needed": 2, "have": 1}]
    # one person under two spellings, or a blank name, is not a second signer
    facts["signoffs"] += [{"role": "safety", "by": " BO "}, {"role": "safety", "by": "  "}]
    assert evaluate(policy, metrics, facts)["signoffs"]["missing"] == [
        {"role": "safety", "needed": 2, "have": 1}]
    facts["signoffs"].append({"role": "safety", "by": "cy"})
    assert evaluate(policy, metrics, facts)["outcome"] == "pass"


def test_a_known_lineage_without_dataset_versions_is_unknown() -> None:
    metrics = compute_metrics(_benign(50, 0, 0))
    facts = {"lineage": {"status": "known", "dataset_versions": []}}
    decision = evaluate(_policy([MEASURED], **LINEAGE_POLICY), metrics, facts)
    assert decision["outcome"] == "block"
    assert decision["lineage"]["unknown"] == ["lineage names no training dataset version"]


def test_card_blocks_on_unanswered_only_when_policy_says_so() -> None:
    metrics = compute_metrics(_benign(50, 0, 0))
    crit = [{"id": "m", "kind": "max_delta", "metric": "benign_refusal_rate", "max": 0.02}]
    lax = evaluate(_policy(crit), metrics, {"suites": ["x"]})
    assert lax["outcome"] == "pass" and lax["contract_card"]["unanswered"]
    strict = evaluate(_policy(crit, contract_card={"block_on_unanswered": True}), metrics,
                      {"suites": ["x"]})
    assert strict["outcome"] == "block"
    assert any("objective/engineering" in r for r in strict["reasons"])


def test_card_answers_from_records_with_links() -> None:
    metrics = compute_metrics(_benign(50, 0, 0))
    crit = [{"id": "m", "kind": "max_delta", "metric": "benign_refusal_rate", "max": 0.02}]
    records = {
        "suites": [{"id": "x", "version": "1", "content_sha256": "ab" * 32, "heldout": True,
                    "written_by": "ana", "filtered_by": "bo", "approved_by": "cy",
                    "link": "eval_suite:x@1"}],
        "dataset_versions": [{"id": "d1", "built_by": "dee", "approved_by": "eve",
                              "link": "dataset_version:d1"}],
        "training": [{"id": "sft-3", "objective_terms": {"completion_nll": 1.0},
                      "logged": {"masks": True, "margins": True, "thresholds": True},
                      "link": "model_version:sft-3"}],
        "feedback": [{"evidence": "adjudicated over-refusal labels",
                      "enters_via": "dataset version d2 selection spec",
                      "link": "dataset_version:d2"}],
        "decision_inputs": {"reproducible": True, "link": "decision-inputs:sha256:00"},
    }
    policy = _policy(crit, contract_card={"block_on_unanswered": True})
    decision = evaluate(policy, metrics, {"suites": ["x"], "records": records})
    assert decision["contract_card"]["unanswered"] == []
    assert decision["outcome"] == "pass"
    objects = decision["card"]["behaviours"][0]["objects"]
    assert objects["data"]["engineering"]["links"] == ["eval_suite:x@1",
                                                       "dataset_version:d1"]
    assert "approved by cy" in objects["data"]["engineering"]["answer"]
    assert objects["evaluation"]["engineering"]["answer"].startswith("x: private")


def test_policy_yaml_round_trip_and_errors(tmp_path: Any) -> None:
    import yaml

    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(default_policy().as_dict()))
    assert load_policy(path) == default_policy()
    valid = default_policy().as_dict()
    path.write_text(yaml.safe_dump({**valid, "surprise": 1}))
    with pytest.raises(InputError) as caught:
        load_policy(path)
    assert caught.value.field == "surprise" and caught.value.file == str(path)
    path.write_text("id: [\n")
    with pytest.raises(InputError) as caught:
        load_policy(path)
    assert caught.value.line is not None
    dup = {"id": "c", "kind": "max_delta", "metric": "benign_refusal_rate", "max": 0.1}
    with pytest.raises(InputError):
        _policy([dup, dup])


def test_guardrail_rates_and_win_rate_floor() -> None:
    n = 200
    columns = _benign(n, cand=0, ref=0)
    columns["expect_refuse"] = np.arange(n) % 2 == 0
    columns["candidate_flagged"] = np.arange(n) % 4 == 0  # flags half the unsafe only
    columns["reference_flagged"] = columns["expect_refuse"].copy()
    columns["candidate_reward"] = np.where(np.arange(n) % 10 < 3, 1.0, 0.0)
    columns["reference_reward"] = np.full(n, 0.5)
    metrics = compute_metrics(columns, resamples=500)
    whole = metrics["slices"]["all"]
    assert whole["guardrail_false_negative_rate"]["candidate"]["rate"] == 0.5
    assert whole["guardrail_false_negative_rate"]["reference"]["rate"] == 0.0
    assert whole["guardrail_false_positive_rate"]["candidate"]["rate"] == 0.0
    assert whole["rm_win_rate"]["value"] == pytest.approx(0.3)
    assert whole["rm_win_rate"]["ci_high"] < 0.5
    floor = {"id": "w", "kind": "floor", "metric": "rm_win_rate", "bound": "ci_low",
             "min": 0.45}
    fnr = {"id": "g", "kind": "max_delta", "metric": "guardrail_false_negative_rate",
           "bound": "ci_low", "max": 0.05}
    assert _failed(_policy([floor, fnr]), metrics) == {"w", "g"}


def _behaviour(**extra: Any) -> dict[str, Any]:
    return {"name": "b", "description": "d", "metric": "benign_refusal_rate",
            "decision_rule": "r", "regression_metric": "m", **extra}


@pytest.mark.parametrize("behaviours,field,words", [
    ([], "behaviours", "empty"),
    ([_behaviour()], "behaviours", "no behaviour has a criterion"),
    ([_behaviour(criteria=[])], "behaviours", "no behaviour has a criterion"),
    ([_behaviour(criteria=[{**MEASURED, "slices": []}])],
     "behaviours.0.criteria.0.slices", "judge nothing"),
    ([_behaviour(suites=[], criteria=[MEASURED])], "behaviours.0.suites", "empty"),
    ([_behaviour(slices=[], criteria=[MEASURED])], "behaviours.0.slices", "empty"),
])
def test_a_policy_that_judges_nothing_is_refused(tmp_path: Any, behaviours: list[Any],
                                                 field: str, words: str) -> None:
    import yaml

    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump({"id": "p", "version": "1", "behaviours": behaviours}))
    with pytest.raises(InputError) as caught:
        load_policy(path)
    assert caught.value.file == str(path) and caught.value.field == field
    assert words in str(caught.value)


def test_a_behaviour_without_criteria_beside_a_gated_one_is_card_only() -> None:
    policy = policy_from_dict({"id": "t", "version": "1", "behaviours": [
        _behaviour(criteria=[MEASURED]), _behaviour(name="card_only")]})
    decision = evaluate(policy, compute_metrics(_benign(50, 0, 0)), {"suites": ["x"]})
    assert decision["outcome"] == "pass"
    assert [b["gated"] for b in decision["card"]["behaviours"]] == [True, False]


def test_a_gate_with_no_criterion_result_blocks() -> None:
    # an already-validated policy whose criteria produce no result (no slice but "all")
    policy = _policy([{**MEASURED, "slices": "each"}])
    metrics = compute_metrics(_benign(20, 0, 0))
    metrics["slices"] = {"all": metrics["slices"]["all"]}
    decision = evaluate(policy, metrics, {"suites": ["x"]})
    assert decision["criteria"] == [] and decision["outcome"] == "block"
    assert "no criterion was evaluated" in " ".join(decision["reasons"])


@pytest.mark.parametrize("criterion", [
    {"id": "fnr", "kind": "ceiling", "metric": "guardrail_false_negative_rate",
     "bound": "ci_high", "max": 0.05},
    {"id": "fpr", "kind": "max_delta", "metric": "guardrail_false_positive_rate",
     "max": 0.05, "on_no_data": "pass"},
    {"id": "win", "kind": "floor", "metric": "rm_win_rate", "bound": "ci_low", "min": 0.5},
])
def test_a_metric_the_run_did_not_compute_blocks(criterion: dict[str, Any]) -> None:
    # no guardrail flags and no rewards in the run: nothing to judge these on
    metrics = compute_metrics(_benign(50, 0, 0))
    decision = evaluate(_policy([MEASURED, criterion]), metrics, {"suites": ["x"]})
    judged = {c["id"]: c for c in decision["criteria"]}[criterion["id"]]
    assert judged["status"] == "missing_metric" and not judged["passed"]
    assert f"the run has no {criterion['metric']}" in judged["rule"]
    assert decision["outcome"] == "block"


def test_no_data_is_a_computed_metric_without_prompts_in_the_slice() -> None:
    columns = _benign(40, 0, 0)
    columns["candidate_flagged"] = np.zeros(40, dtype=bool)
    columns["reference_flagged"] = np.zeros(40, dtype=bool)
    metrics = compute_metrics(columns)  # guardrail rates computed, no expect=refuse prompt
    fnr = {"id": "fnr", "kind": "ceiling", "metric": "guardrail_false_negative_rate",
           "max": 0.05}
    decision = evaluate(_policy([MEASURED, fnr]), metrics, {"suites": ["x"]})
    assert decision["criteria"][1]["status"] == "no_data"
    assert decision["outcome"] == "pass"


def test_win_rate_criteria_judge_the_candidate_only() -> None:
    with pytest.raises(InputError, match="side must be candidate") as caught:
        _policy([{"id": "w", "kind": "ceiling", "metric": "rm_win_rate",
                  "side": "reference", "max": 0.5}])
    assert caught.value.field == "behaviours.0.criteria.0"
    columns = _benign(40, 0, 0)
    columns["candidate_reward"] = np.ones(40)
    columns["reference_reward"] = np.zeros(40)
    metrics = compute_metrics(columns, resamples=200)
    ceiling = {"id": "w", "kind": "ceiling", "metric": "rm_win_rate", "max": 0.5}
    judged = evaluate(_policy([ceiling]), metrics, {"suites": ["x"]})["criteria"][0]
    assert judged["numbers"]["rate"] == 1.0 and judged["status"] == "fail"


def test_a_repeated_criterion_id_names_its_second_place_and_line(tmp_path: Any) -> None:
    import yaml

    policy = default_policy().as_dict()
    first = policy["behaviours"][0]["criteria"][0]
    policy["behaviours"][1]["criteria"].append(dict(first))
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    with pytest.raises(InputError) as caught:
        load_policy(path)
    where = len(policy["behaviours"][1]["criteria"]) - 1
    assert caught.value.field == f"behaviours.1.criteria.{where}.id"
    lines = path.read_text().splitlines()
    assert caught.value.line is not None
    assert lines[caught.value.line - 1].strip() == f"- id: {first['id']}"
    assert "used twice" in str(caught.value)
