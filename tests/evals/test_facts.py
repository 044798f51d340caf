"""The --facts file: every level validated, errors name the file and the field path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hilt.errors import InputError
from hilt.evals.check import run_check
from hilt.evals.facts import load_facts

SUITE = [{"id": f"i{i}", "prompt": f"p{i}", "slice": "s", "expect": "comply"}
         for i in range(40)]
RESP = [{"id": f"i{i}", "response": "r", "judgment": "comply"} for i in range(40)]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _facts(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "facts.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


GOOD = {"versions": {"rubric": "harm@2", "prompt_template": "chatml@1"},
        "lineage": {"status": "known", "dataset_versions": [
            {"id": "d1", "consented": True, "revoked": False, "contaminated_with": []}]},
        "records": {"training": [{"id": "run1", "objective_terms": {"sft": 1.0},
                                  "logged": {"masks": True}, "link": "run:run1"}]}}


def test_a_valid_file_reaches_the_decision(tmp_path: Path) -> None:
    suite = _jsonl(tmp_path / "suite.jsonl", SUITE)
    cand = _jsonl(tmp_path / "cand.jsonl", RESP)
    result = run_check(suite=suite, candidate=cand, reference=cand, out=tmp_path / "out",
                       facts=_facts(tmp_path, GOOD))
    record = result.record
    assert record["inputs"]["versions"]["rubric"] == "harm@2"
    facts = record["inputs"]["facts"]
    assert facts["lineage"]["dataset_versions"][0]["consented"] is True
    assert record["decision"]["signoffs"]["present"] == []


@pytest.mark.parametrize("data,field,words", [
    ({"versions": {"rubic": "harm@2"}}, "versions.rubic", "unknown key"),
    ({"lineage": {"status": "known", "datasets": [{"id": "v1", "consented": False}]}},
     "lineage.datasets", "unknown key"),
    # a misspelt key is named, not the required field it leaves missing
    ({"lineage": {"datasets": [{"id": "v1", "consented": False}]}}, "lineage.datasets",
     "unknown key"),
    ({"lineage": {"reason": "no store"}}, "lineage.status", "Field required"),
    ({"lineage": "known"}, "lineage", ""),
    ({"lineage": {"status": "maybe"}}, "lineage.status", ""),
    ({"lineage": {"status": "known", "dataset_versions": [{"id": "v1",
                                                           "consented": "yes"}]}},
     "lineage.dataset_versions.0.consented", ""),
    ({"records": [1, 2]}, "records", ""),
    # a sign-off counts a registered person: only `hilt gate signoff` records one
    ({"signoffs": [{"role": "release_owner", "by": "mallory"}]}, "signoffs",
     "recorded with `hilt gate signoff`"),
    ({"surprise": 1}, "surprise", "unknown key"),
])
def test_bad_facts_name_the_field(tmp_path: Path, data: Any, field: str, words: str) -> None:
    path = _facts(tmp_path, data)
    with pytest.raises(InputError) as caught:
        load_facts(path)
    assert caught.value.file == str(path) and caught.value.field == field
    assert words in str(caught.value)


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_facts(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("versions: [\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_facts(bad)
    assert caught.value.line is not None
    bad.write_text("- 1\n", encoding="utf-8")
    with pytest.raises(InputError, match="mapping"):
        load_facts(bad)


def test_generation_settings_of_the_response_files_are_recorded(tmp_path: Path) -> None:
    suite = _jsonl(tmp_path / "suite.jsonl", SUITE)
    hot = {"endpoint": "http://a/v1", "model": "m", "decoder": {"temperature": 0.7}}
    cold = {**hot, "decoder": {"temperature": 0.0}}
    cand = _jsonl(tmp_path / "cand.jsonl",
                  [{**r, "generation": {"settings": hot}} for r in RESP])
    mixed = _jsonl(tmp_path / "ref.jsonl", [{**r, "generation": {"settings": hot if i else cold}}
                                            for i, r in enumerate(RESP)])
    plain = _jsonl(tmp_path / "plain.jsonl", RESP)
    record = run_check(suite=suite, candidate=cand, reference=plain,
                       out=tmp_path / "o1").record
    assert record["inputs"]["versions"]["decoder_settings"] == {"candidate": hot,
                                                                "reference": None}
    record = run_check(suite=suite, candidate=cand, reference=mixed,
                       out=tmp_path / "o2").record
    recorded = record["inputs"]["versions"]["decoder_settings"]["reference"]
    assert recorded == {"mixed": [cold, hot], "lines_with_settings": len(RESP)}
    with pytest.raises(InputError) as caught:
        run_check(suite=suite, candidate=cand, reference=plain, out=tmp_path / "o3",
                  facts=_facts(tmp_path, {"versions": {"decoder_settings": {"t": 0}}}))
    assert caught.value.field == "versions.decoder_settings"
    # files without generation settings leave it to the facts file, as before
    record = run_check(suite=suite, candidate=plain, reference=plain, out=tmp_path / "o4",
                       facts=_facts(tmp_path, {"versions": {"decoder_settings": {"t": 0}}})
                       ).record
    assert record["inputs"]["versions"]["decoder_settings"] == {"t": 0}


@pytest.mark.parametrize("records,field,words", [
    ({"trainig": [{"id": "run1"}]}, "records.trainig", "unknown key"),
    ({"suites": "abc"}, "records.suites", "valid list"),
    ({"training": {"a": 1}}, "records.training", "valid list"),
    ({"dataset_versions": 5}, "records.dataset_versions", "valid list"),
    ({"suites": [{"id": "s", "heldout": "yes"}]}, "records.suites.0.heldout", ""),
    ({"suites": [{"id": "s", "aproved_by": "ana"}]}, "records.suites.0.aproved_by",
     "unknown key"),
    ({"training": [{"id": "r", "logged": {"mask": True}}]}, "records.training.0.logged.mask",
     "unknown key"),
    ({"training": [{"id": "r", "objective_terms": {"sft": "lots"}}]},
     "records.training.0.objective_terms.sft", ""),
    ({"feedback": [{"evidence": "x", "enters": "y"}]}, "records.feedback.0.enters",
     "unknown key"),
    ({"decision_inputs": {"reproducible": True}}, "records.decision_inputs", "unknown key"),
])
def test_bad_card_records_name_the_field(tmp_path: Path, records: Any, field: str,
                                         words: str) -> None:
    path = _facts(tmp_path, {"records": records})
    with pytest.raises(InputError) as caught:
        load_facts(path)
    assert caught.value.file == str(path) and caught.value.field == field
    assert words in str(caught.value)


def test_card_records_from_the_facts_file_answer_the_card(tmp_path: Path) -> None:
    suite = _jsonl(tmp_path / "suite.jsonl", SUITE)
    cand = _jsonl(tmp_path / "cand.jsonl", RESP)
    records = {"training": [{"id": "run1", "objective_terms": {"sft": 1.0},
                             "logged": {"masks": True}, "link": "run:run1"}],
               "feedback": [{"evidence": "review disagreements", "enters_via": "dataset v2",
                             "link": "fb:1"}]}
    assert load_facts(_facts(tmp_path, {"records": records}))["records"] == records
    result = run_check(suite=suite, candidate=cand, reference=cand, out=tmp_path / "out",
                       facts=_facts(tmp_path, {"records": records}))
    objects = result.record["decision"]["card"]["behaviours"][0]["objects"]
    assert objects["objective"]["mathematical"]["status"] == "answered"
    # only masks were recorded: margins and thresholds stay unknown, not "NOT logged"
    engineering = objects["objective"]["engineering"]
    assert engineering["status"] == "partial"
    assert engineering["missing"] == ["run1: whether margins are logged",
                                      "run1: whether thresholds are logged"]
    assert objects["feedback"]["engineering"]["answer"] == "dataset v2"
