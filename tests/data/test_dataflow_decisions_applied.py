"""Recorded rubric decisions are applied when a dataset mixes rubric versions: a
``mapping`` translates the older version's labels, a ``relabel`` replaces an old label
by the event's label under the newer version where one exists, an ``accept`` leaves it;
the manifest says which decision did what to how many labels, and the version id
follows the records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from data_factories import make_label
from sqlalchemy.engine import Engine

from hilt.data.build import BuildResult, build_version
from hilt.data.spec import parse_spec
from hilt.events.ingest import ingest_events
from hilt.quality.drift.bridge import record_decision
from hilt.review.records import FinalLabelRecord
from hilt.review.rubrics import parse_rubric, publish_rubric
from hilt.store.db import transaction

CHOICES = ["safe", "borderline", "harmful"]
SPEC = {"name": "verdicts", "kind": "classification",
        "classification": {"question_id": "verdict"},
        "split": {"validation_fraction": 0.0}}


def _rubric(note: str) -> Any:
    return parse_rubric({
        "id": "simple", "title": "Simple", "changelog": note,
        "guidelines": f"Judge the response. {note}",
        "questions": [{"id": "verdict", "kind": "single_choice", "prompt": "ok?",
                       "options": CHOICES}]}, file="test")


@pytest.fixture
def store(engine: Engine) -> Engine:
    """Rubric ``simple`` at versions 1 to 3 and four events with train consent."""
    with transaction(engine) as session:
        for note in ("first version", "borderline now counts as harmful", "wording"):
            publish_rubric(session, _rubric(note), actor="lead")
    ingest_events(engine, [
        {"id": f"ev{i}", "interaction": {"prompt": f"Question {i}: how do plants in "
                                         f"garden number {i} grow best?"},
         "responses": [{"text": f"Plants {i} need sun and water."}],
         "context": {"consent": ["train", "review"]}} for i in range(4)], actor="test")
    return engine


def _verdict(event: str, value: str, version: int, *, confidence: float = 0.9
             ) -> FinalLabelRecord:
    return make_label(event, value, kind="single_choice", question="verdict",
                      rubric="simple", version=version, confidence=confidence, n=version)


def _build(engine: Engine, labels: list[FinalLabelRecord], tmp_path: Path) -> BuildResult:
    with transaction(engine) as session:
        return build_version(session, parse_spec(SPEC), actor="tester",
                             label_source=lambda _s, **_k: labels,
                             directory=tmp_path / "ds")


def _records(result: BuildResult, tmp_path: Path) -> dict[str, list[tuple[str, list[str]]]]:
    """Event id -> (label, rubric versions) of each of its records."""
    out: dict[str, list[tuple[str, list[str]]]] = {}
    path = tmp_path / "ds" / result.version_id / "records.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        out.setdefault(record["lineage"]["event_id"], []).append(
            (record["label"], record["lineage"]["rubrics"]))
    return out


def _decide(engine: Engine, old: int, new: int, kind: str, **extra: Any) -> str:
    with transaction(engine) as session:
        made = record_decision(session, "simple", old, new, kind=kind, reason="test",
                               actor="lead", **extra)
    return str(made["decision_id"])


def test_a_mapping_decision_translates_the_older_versions_labels(
        store: Engine, tmp_path: Path) -> None:
    labels = [_verdict("ev0", "borderline", 1), _verdict("ev1", "safe", 1),
              _verdict("ev2", "harmful", 2), _verdict("ev3", "borderline", 2)]
    before = _build(store, labels, tmp_path)  # never bridged: allowed as it is
    assert _records(before, tmp_path)["ev0"] == [("borderline", ["simple@1"])]
    decision = _decide(store, 1, 2, "mapping", question_id="verdict",
                       mapping={"borderline": "harmful"})
    after = _build(store, labels, tmp_path)
    assert after.created and after.version_id != before.version_id
    assert _records(after, tmp_path) == {
        "ev0": [("harmful", ["simple@1"])], "ev1": [("safe", ["simple@1"])],
        "ev2": [("harmful", ["simple@2"])], "ev3": [("borderline", ["simple@2"])]}
    assert after.manifest["notes"]["rubric_mixing"]["decisions_applied"] == [{
        "rubric_id": "simple", "question_id": "verdict", "old_version": 1,
        "new_version": 2, "kind": "mapping", "decision_id": decision,
        "mapping": {"borderline": "harmful"}, "labels": 2, "changed": 1}]


def test_a_relabel_decision_uses_the_newer_versions_label_where_one_exists(
        store: Engine, tmp_path: Path) -> None:
    # ev0 was re-reviewed under version 2; ev1 was not. The old label of ev0 has the
    # higher confidence, so it would win if it stayed.
    labels = [_verdict("ev0", "safe", 1, confidence=0.95), _verdict("ev0", "harmful", 2),
              _verdict("ev1", "borderline", 1), _verdict("ev2", "safe", 2)]
    before = _build(store, labels, tmp_path)
    decision = _decide(store, 1, 2, "relabel")
    after = _build(store, labels, tmp_path)
    assert after.version_id != before.version_id
    found = _records(after, tmp_path)
    assert found["ev0"] == [("harmful", ["simple@2"])]
    assert found["ev1"] == [("borderline", ["simple@1"])]
    applied = after.manifest["notes"]["rubric_mixing"]["decisions_applied"]
    assert applied == [{
        "rubric_id": "simple", "question_id": "verdict", "old_version": 1,
        "new_version": 2, "kind": "relabel", "decision_id": decision, "labels": 2,
        "relabelled": 1, "kept_without_relabel": 1}]
    # The replaced label is in no record's lineage.
    assert "lb-ev0-verdict-1" not in after.manifest["lineage"]["label_ids"]


def test_decisions_along_a_chain_of_versions_apply_link_by_link(
        store: Engine, tmp_path: Path) -> None:
    # Labels of versions 1 and 3 and no decision between them directly: the mapping of
    # 1 -> 2 translates, the acceptance of 2 -> 3 leaves the translated label.
    mapping = _decide(store, 1, 2, "mapping", question_id="verdict",
                      mapping={"borderline": "harmful"})
    accept = _decide(store, 2, 3, "accept")
    labels = [_verdict("ev0", "borderline", 1), _verdict("ev1", "borderline", 3)]
    result = _build(store, labels, tmp_path)
    assert _records(result, tmp_path) == {"ev0": [("harmful", ["simple@1"])],
                                          "ev1": [("borderline", ["simple@3"])]}
    assert result.manifest["notes"]["rubric_mixing"]["decisions_applied"] == [
        {"rubric_id": "simple", "question_id": "verdict", "old_version": 1,
         "new_version": 2, "kind": "mapping", "decision_id": mapping,
         "mapping": {"borderline": "harmful"}, "labels": 1, "changed": 1},
        {"rubric_id": "simple", "question_id": "verdict", "old_version": 2,
         "new_version": 3, "kind": "accept", "decision_id": accept, "labels": 1}]


def test_labels_of_one_version_are_left_as_they_are(store: Engine, tmp_path: Path
                                                     ) -> None:
    _decide(store, 1, 2, "mapping", question_id="verdict",
            mapping={"borderline": "harmful"})
    result = _build(store, [_verdict("ev0", "borderline", 1)], tmp_path)
    assert _records(result, tmp_path) == {"ev0": [("borderline", ["simple@1"])]}
    assert "decisions_applied" not in result.manifest["notes"]["rubric_mixing"]
