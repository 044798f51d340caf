"""Labels of one event that give the same record key: repeats collapse, every other
label (another value, rubric version or task) stays a record of its own under a key of
its own, and keys that no two labels share are left as they are."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from data_factories import NOW, make_candidate, make_label
from typer.testing import CliRunner

from hilt.data.examples import candidate_examples
from hilt.data.pipeline import SelectionResult, run_selection
from hilt.data.spec import SelectionSpec
from hilt.review.records import FinalLabelRecord

CLS = SelectionSpec(name="c", kind="classification")
PREF = SelectionSpec(name="p", kind="preference")
# exact dedup keeping one record of each label, as it did before label conflicts
CLS_ALL = CLS.model_copy(update={"dedup": CLS.dedup.model_copy(
    update={"label_conflicts": "keep_all"})})
PREF_ALL = PREF.model_copy(update={"dedup": CLS_ALL.dedup})


def _harm(value: str, version: int, confidence: float, *, event: str = "e1"
          ) -> FinalLabelRecord:
    return make_label(event, value, kind="single_choice", question="harm", version=version,
                      confidence=confidence, n=version)


def _steps(result: SelectionResult) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in result.manifest_steps()}


def _by_key(result: SelectionResult) -> dict[str, tuple[str | None, list[str], list[str]]]:
    """Record key -> (label, label ids, rubric versions)."""
    return {ex.key: (ex.label, ex.lineage()["label_ids"], ex.lineage()["rubrics"])
            for ex in result.examples}


def test_contradicting_classification_labels_of_two_rubric_versions_give_both_records(
        ) -> None:
    c = make_candidate("e1", "how do I cook rice", ["boil it"],
                       labels=[_harm("safe", 1, 0.9), _harm("unsafe", 2, 0.8)])
    result = run_selection([c], CLS_ALL, [])
    assert _by_key(result) == {
        "cls:e1:helpful/harm:prompt": ("safe", ["lb-e1-harm-1"], ["helpful@1"]),
        "cls:e1:helpful/harm:prompt#lb-e1-harm-2": ("unsafe", ["lb-e1-harm-2"],
                                                    ["helpful@2"])}
    steps = _steps(result)
    assert steps["examples"]["notes"] == {
        "examples": 2, "conflicting_labels": {"count": 1,
                                              "keys": ["cls:e1:helpful/harm:prompt"]}}
    assert steps["exact_dedup"]["removed"] == steps["near_dedup"]["removed"] == 0
    # by default exact dedup settles the one text's two labels: one each, so the higher
    # confidence decides, and the other record is listed
    settled = _steps(run_selection([c], CLS, []))
    assert settled["examples"]["notes"] == steps["examples"]["notes"]
    assert settled["exact_dedup"]["removed_ids"] == {
        "label_conflict": ["cls:e1:helpful/harm:prompt#lb-e1-harm-2"]}


def test_the_label_decided_first_keeps_the_key_whatever_the_order_and_confidence(
        ) -> None:
    early = replace(_harm("safe", 1, 0.5), decided_at=NOW)
    late = replace(_harm("unsafe", 1, 0.99), label_id="lb-a-late", task_id="t-second",
                   decided_at=NOW + timedelta(days=3))
    keys = []
    for labels in ([early, late], [late, early]):
        found = candidate_examples(make_candidate("e1", "p", ["r"], labels=labels), CLS)
        keys.append(sorted((ex.key, ex.label) for ex in found))
    assert keys[0] == keys[1] == [("cls:e1:helpful/harm:prompt", "safe"),
                                  ("cls:e1:helpful/harm:prompt#lb-a-late", "unsafe")]


def test_opposite_preferences_of_two_rubric_versions_give_both_pairs_and_are_reported(
        ) -> None:
    # a long prompt, so that the two pairs are near duplicates of each other
    prompt = "write a short poem about the autumn leaves falling in the quiet park " + \
        " ".join(f"with detail number {i}" for i in range(20))
    responses = ["golden leaves drift down slowly onto the empty benches",
                 "red leaves swirl around the old lamp post in the wind"]
    labels = [make_label("e2", {"chosen": 0, "rejected": 1}, version=1, confidence=0.7, n=1),
              make_label("e2", {"chosen": 1, "rejected": 0}, version=2, confidence=0.9, n=2)]
    result = run_selection([make_candidate("e2", prompt, responses, labels=labels)],
                           PREF_ALL, [])
    pairs = {ex.key: (ex.chosen, ex.lineage()["rubrics"]) for ex in result.examples}
    assert pairs == {"pref:e2:helpful/pref:0-1": (responses[0], ["helpful@1"]),
                     "pref:e2:helpful/pref:0-1#lb-e2-pref-2": (responses[1], ["helpful@2"])}
    near = _steps(result)["near_dedup"]
    assert near["removed"] == 0
    assert near["notes"]["conflicting_preferences"] == [
        ["pref:e2:helpful/pref:0-1#lb-e2-pref-2", "pref:e2:helpful/pref:0-1"]]
    # by default the pair preferred with the higher confidence stays
    settled = run_selection([make_candidate("e2", prompt, responses, labels=labels)], PREF,
                            [])
    assert [ex.chosen for ex in settled.examples] == [responses[1]]
    assert _steps(settled)["exact_dedup"]["removed_ids"] == {
        "label_conflict": ["pref:e2:helpful/pref:0-1"]}


def test_agreeing_labels_of_two_rubric_versions_are_both_made_and_one_counted_as_duplicate(
        ) -> None:
    c = make_candidate("e1", "how do I cook rice", ["boil it"],
                       labels=[_harm("safe", 1, 0.8), _harm("safe", 2, 0.9)])
    assert len(candidate_examples(c, CLS)) == 2
    result = run_selection([c], CLS, [])
    assert _by_key(result) == {
        "cls:e1:helpful/harm:prompt#lb-e1-harm-2": ("safe", ["lb-e1-harm-2"], ["helpful@2"])}
    exact = _steps(result)["exact_dedup"]
    assert exact["removed_ids"] == {"exact_duplicate": ["cls:e1:helpful/harm:prompt"]}


def test_two_tasks_with_the_same_label_give_two_records_before_dedup() -> None:
    first = _harm("safe", 1, 0.9)
    second = replace(first, label_id="lb-other-task", task_id="t-other")
    found = candidate_examples(make_candidate("e1", "p", ["r"], labels=[first, second]), CLS)
    assert sorted(ex.key for ex in found) == ["cls:e1:helpful/harm:prompt",
                                              "cls:e1:helpful/harm:prompt#lb-other-task"]


def test_a_label_stated_twice_under_one_task_and_version_is_one_record() -> None:
    first = _harm("safe", 1, 0.6)
    again = replace(first, label_id="lb-again", confidence=0.95)
    for labels in ([first, again], [again, first], [first, first]):
        found = candidate_examples(make_candidate("e1", "p", ["r"], labels=labels), CLS)
        assert [ex.key for ex in found] == ["cls:e1:helpful/harm:prompt"]
    found = candidate_examples(make_candidate("e1", "p", ["r"], labels=[first, again]), CLS)
    assert found[0].confidence == 0.95


def test_event_label_feedback_of_one_name_with_two_values_gives_two_records() -> None:
    feedback = [{"kind": "label", "name": "toxic", "value": "no"},
                {"kind": "edit", "text": "fine"},
                {"kind": "label", "name": "toxic", "value": "yes"},
                {"kind": "label", "name": "toxic", "value": "no"}]
    c = make_candidate("e1", "is this message toxic: you are great", ["ok"],
                       feedback=feedback)
    result = run_selection([c], CLS, [])
    assert {ex.key: ex.label for ex in result.examples} == {
        "cls:e1:event/toxic:prompt": "no", "cls:e1:event/toxic:prompt#2": "yes"}
    assert all(s["removed"] == 0 for s in result.manifest_steps())


def test_two_rewrites_of_one_question_give_two_demonstrations() -> None:
    labels = [make_label("e3", "A kinder reply.", kind="rewrite", question="rw", n=1),
              make_label("e3", "A shorter reply.", kind="rewrite", question="rw", version=2,
                         n=2)]
    c = make_candidate("e3", "reply to my friend", ["whatever"], labels=labels)
    found = candidate_examples(c, SelectionSpec(name="s", kind="sft"))
    assert sorted((ex.key, ex.completion) for ex in found) == [
        ("sft:e3:helpful/rw:rewrite", "A kinder reply."),
        ("sft:e3:helpful/rw:rewrite#lb-e3-rw-2", "A shorter reply.")]


def test_keys_that_no_two_labels_share_are_unchanged() -> None:
    labels = [_harm("safe", 1, 0.9),
              make_label("e1", "unsafe", kind="single_choice", question="harm",
                         rubric="other", confidence=0.7),
              make_label("e1", 4.0, kind="scale", question="tone", confidence=0.8)]
    c = make_candidate("e1", "how do I cook rice", ["boil it"], labels=labels)
    found = candidate_examples(c, CLS)
    # the order is by confidence, as it always was
    assert [(ex.key, ex.label) for ex in found] == [
        ("cls:e1:helpful/harm:prompt", "safe"), ("cls:e1:helpful/tone:prompt", "4.0"),
        ("cls:e1:other/harm:prompt", "unsafe")]
    ranking = make_label("e4", [2, 0, 1], kind="ranking", question="rank")
    pairs = candidate_examples(make_candidate("e4", "p", ["a", "b", "c"],
                                              labels=[ranking]), PREF)
    assert sorted(ex.key for ex in pairs) == ["pref:e4:helpful/rank:0-1",
                                              "pref:e4:helpful/rank:0-2",
                                              "pref:e4:helpful/rank:1-2"]


# The same on a store, through the CLI: an event reviewed twice with different verdicts.

RUBRIC = """id: cls
title: classify
changelog: first
guidelines: label it
questions:
  - id: verdict
    kind: single_choice
    prompt: safe?
    options: [safe, harmful]
"""
EVENT = {"id": "ev_a1",
         "interaction": {"prompt": "How do I bake sourdough bread at home with a starter "
                                   "that I made last week from flour and water"},
         "responses": [{"text": "Mix starter, flour, water and salt; fold and bake."}],
         "context": {"subject_id": "alice", "consent": ["review", "train"]}}


def _cli(db: str, *args: str) -> Any:
    from hilt.cli import app

    out = CliRunner().invoke(app, [*args, "--db", db])
    assert out.exit_code == 0 and out.exception is None, (out.output, out.exception)
    return json.loads(out.stdout)


def _review(db: str, verdict: str) -> None:
    task = _cli(db, "task", "create", "--event", "ev_a1", "--rubric", "cls",
                "--overlap", "1")["task_id"]
    _cli(db, "queue", "next", "--reviewer", "r1")
    _cli(db, "review", "submit", task, "--reviewer", "r1", "--answers",
         json.dumps({"verdict": verdict}))


def test_cli_an_event_reviewed_twice_with_different_verdicts_gives_both_records(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.events.ingest import ingest_events
    from hilt.store.db import make_engine

    monkeypatch.setenv("HILT_HOME", str(tmp_path / "home"))
    (tmp_path / "rubric.yaml").write_text(RUBRIC)
    spec = tmp_path / "cls.yaml"
    spec.write_text("name: cls\nkind: classification\nclassification:\n"
                    "  question_id: verdict\nsplit: {validation_fraction: 0}\n")
    engine = make_engine(db_url)
    ingest_events(engine, [EVENT], actor="test")
    engine.dispose()
    _cli(db_url, "rubric", "publish", str(tmp_path / "rubric.yaml"))
    _cli(db_url, "reviewer", "add", "r1")
    _cli(db_url, "quality", "set-status", "r1", "calibrated", "--reason", "test")
    _review(db_url, "safe")
    first = _cli(db_url, "dataset", "build", str(spec))
    _review(db_url, "harmful")
    second = _cli(db_url, "dataset", "build", str(spec))
    assert second["created"] and second["version_id"] != first["version_id"]
    assert second["records"] == 2
    folder = tmp_path / "home" / "datasets"
    records = [json.loads(line) for line in
               (folder / second["version_id"] / "records.jsonl").read_text().splitlines()]
    assert sorted(r["label"] for r in records) == ["harmful", "safe"]
    assert len({r["key"] for r in records}) == 2
    assert len({lid for r in records for lid in r["lineage"]["label_ids"]}) == 2
    # the first version's record is still there, under its key
    kept = json.loads((folder / first["version_id"] / "records.jsonl").read_text())
    assert kept in records

