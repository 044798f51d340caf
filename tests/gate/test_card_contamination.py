"""The contract card answers a suite the training data holds as contaminated, never as
private, and records made before that rule still verify."""

from __future__ import annotations

import copy
from typing import Any

from hilt.gate.card import build_card
from hilt.gate.decision import _derive, build_decision, record_hash, verify
from hilt.gate.policy import default_policy

SUITE = {"id": "xs@1", "version": "1", "content_sha256": "ab" * 32, "heldout": True,
         "link": "eval_suite:xs@1"}


def _facts(contaminated_with: list[str]) -> dict[str, Any]:
    return {"suites": ["xs@1"], "records": {"suites": [SUITE]},
            "lineage": {"status": "known", "dataset_versions": [
                {"id": "d" * 64, "consented": True, "revoked": False,
                 "contaminated_with": contaminated_with}]}}


def _evaluation_answer(card: dict[str, Any]) -> str:
    return str(card["behaviours"][0]["objects"]["evaluation"]["engineering"]["answer"])


def test_a_suite_in_the_training_data_is_contaminated_not_private() -> None:
    answer = _evaluation_answer(build_card(default_policy(), {}, _facts(["xs@1"])))
    assert "xs@1: contaminated, NOT private" in answer and ": private" not in answer
    clean = _evaluation_answer(build_card(default_policy(), {}, _facts([])))
    assert "xs@1: private" in clean


def _table() -> dict[str, list[Any]]:
    return {"id": ["a", "b"], "slice": ["x", "x"], "expect": ["comply", "refuse"],
            "candidate": ["comply", "refuse"], "reference": ["comply", "refuse"],
            "candidate_source": ["human"] * 2, "reference_source": ["human"] * 2}


def test_records_made_before_the_rule_still_verify() -> None:
    record = build_decision(policy=default_policy(), judgments=_table(),
                            versions={"candidate": {"id": "m2"}, "reference": {"id": "m1"}},
                            facts=_facts(["xs@1"]),
                            settings={"alpha": 0.05, "bootstrap_resamples": 200, "seed": 0},
                            created_at="2025-01-01T00:00:00+00:00")
    assert record["inputs"]["settings"]["card_rule"] == "lineage_contamination"
    assert "contaminated" in _evaluation_answer(record["decision"]["card"])
    # the same record as an earlier version wrote it: no rule, the held-out flag answered
    old = copy.deepcopy(record)
    del old["inputs"]["settings"]["card_rule"]
    old["metrics"], old["decision"] = _derive(old["inputs"])
    old["outcome"] = old["decision"]["outcome"]
    old["hash"] = record_hash(old)
    assert "xs@1: private" in _evaluation_answer(old["decision"]["card"])
    assert verify(old).ok, verify(old).problems
    # and a card edited to hide the contamination does not verify
    edited = copy.deepcopy(record)
    edited["decision"]["card"] = old["decision"]["card"]
    edited["hash"] = record_hash(edited)
    assert not verify(edited).ok
