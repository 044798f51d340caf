"""A build counts, per label filter, the labels it excluded and the events it left with
no label, on SQLite and PostgreSQL, from final labels stored in the database; the
records selected are those the filters applied in the label query select."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from data_factories import make_label
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.data.build import BuildResult, build_version
from hilt.data.spec import parse_spec
from hilt.errors import InputError
from hilt.events.ingest import ingest_events
from hilt.review.labels import iter_final_labels
from hilt.store.db import transaction
from hilt.store.tables.review import FinalLabelRow, ReviewTaskRow

IN_WINDOW = datetime(2025, 3, 1, tzinfo=UTC)
BEFORE_WINDOW = datetime(2024, 6, 1, tzinfo=UTC)
WINDOW = {"since": "2025-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
FILTERS = {**WINDOW, "rubric_ids": ["helpful"], "rubric_versions": [1],
           "provenance": ["majority", "unanimous"], "min_confidence": 0.8}
BASE = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0},
        "dedup": {"exact": False, "near": False}}
LABEL_STEPS = ["label_window", "label_rubric_ids", "label_rubric_versions",
               "label_provenance", "label_min_confidence"]
# event -> its labels: (question, rubric, version, provenance, confidence, decided_at)
LABELS: dict[str, list[tuple[str, str, int, str, float, datetime]]] = {
    "ev0": [("pref", "helpful", 1, "majority", 0.9, IN_WINDOW)],
    "ev1": [("pref", "helpful", 1, "majority", 0.5, IN_WINDOW)],
    "ev2": [("pref", "helpful", 1, "model_aggregated", 0.9, IN_WINDOW)],
    "ev3": [("pref", "other", 1, "majority", 0.9, IN_WINDOW)],
    "ev4": [("pref", "helpful", 2, "majority", 0.9, IN_WINDOW)],
    "ev5": [("pref", "helpful", 1, "majority", 0.9, BEFORE_WINDOW)],
    # one label passes: the event stays, the other label is counted
    "ev6": [("pref", "helpful", 1, "unanimous", 0.95, IN_WINDOW),
            ("pref2", "helpful", 1, "majority", 0.3, IN_WINDOW)],
    # its furthest label reaches the confidence filter, which removes the event
    "ev7": [("pref", "helpful", 1, "model_aggregated", 0.3, IN_WINDOW),
            ("pref2", "helpful", 1, "majority", 0.3, IN_WINDOW)],
}


def _event(event_id: str) -> dict[str, Any]:
    n = event_id[2:]
    return {"id": event_id,
            "interaction": {"prompt": f"Question {n}: which vegetables suit raised bed {n}?"},
            "responses": [{"text": f"Beans and lettuce suit bed {n}."},
                          {"text": f"Nothing grows in bed {n}."}],
            "context": {"consent": ["train"]}}


@pytest.fixture
def stored(engine: Engine) -> None:
    ingest_events(engine, [_event(e) for e in LABELS], actor="test")
    with transaction(engine) as session:
        for event_id, labels in LABELS.items():
            for question, rubric, version, provenance, confidence, decided in labels:
                task_id = f"t-{event_id}-{question}"
                session.add(ReviewTaskRow(
                    id=task_id, event_id=event_id, status="resolved", pool="default",
                    severity=1, rubric_id=rubric, rubric_version=version, overlap_k=2,
                    n_responses=2, open_slots=0, sla_due_at=decided))
                session.flush()
                session.add(FinalLabelRow(
                    id=f"lb-{event_id}-{question}", task_id=task_id, event_id=event_id,
                    rubric_id=rubric, rubric_version=version, question_id=question,
                    question_kind="preference", value={"chosen": 0, "rejected": 1},
                    provenance=provenance, confidence=confidence, review_ids=["rv-a"],
                    adjudication_id=None, source_task_id=None, policy_version="policy-1",
                    decided_at=decided))


def _build(engine: Engine, tmp_path: Path, labels: dict[str, Any], **kw: Any) -> BuildResult:
    with transaction(engine) as session:
        return build_version(session, parse_spec({**BASE, "labels": labels}), actor="t",
                             directory=tmp_path / "ds", **kw)


def _label_steps(result: BuildResult) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in result.steps if s["step"].startswith("label_")}


def test_each_label_filter_counts_the_labels_and_events_it_excluded(
        engine: Engine, stored: None, tmp_path: Path) -> None:
    result = _build(engine, tmp_path, FILTERS)
    steps = _label_steps(result)
    assert [s["step"] for s in result.steps][:6] == [*LABEL_STEPS, "filter"]
    counts = {name: (s["input"], s["removed"], s["labels"]["input"],
                     s["labels"]["removed"], s["labels"]["output"])
              for name, s in steps.items()}
    assert counts == {"label_window": (8, 1, 10, 1, 9),
                      "label_rubric_ids": (7, 1, 9, 1, 8),
                      "label_rubric_versions": (6, 1, 8, 1, 7),
                      "label_provenance": (5, 1, 7, 2, 5),
                      "label_min_confidence": (4, 2, 5, 3, 2)}
    assert {name: s["removed_ids"] for name, s in steps.items()} == {
        # events outside the window are counted in the store, not listed
        "label_window": {},
        "label_rubric_ids": {"no_label_of_selected_rubric": ["ev3"]},
        "label_rubric_versions": {"no_label_of_selected_rubric_version": ["ev4"]},
        "label_provenance": {"label_provenance_not_selected": ["ev2"]},
        "label_min_confidence": {"label_below_min_confidence": ["ev1", "ev7"]}}
    assert steps["label_window"]["reasons"] == {"no_label_in_window": 1}
    assert steps["label_min_confidence"]["output"] == 2
    assert result.manifest["steps"] == result.steps
    assert sorted(result.manifest["lineage"]["event_ids"]) == ["ev0", "ev6"]
    assert result.manifest["lineage"]["label_ids"] == ["lb-ev0-pref", "lb-ev6-pref"]


def test_records_equal_those_of_filters_applied_in_the_label_query(
        engine: Engine, stored: None, tmp_path: Path) -> None:
    counted = _build(engine, tmp_path, FILTERS)

    def filtered_in_query(session: Any, **_window: Any) -> Any:
        return iter_final_labels(session, since=datetime(2025, 1, 1, tzinfo=UTC),
                                 until=datetime(2026, 1, 1, tzinfo=UTC),
                                 rubric_ids=["helpful"], rubric_versions=[1],
                                 provenance=["majority", "unanimous"], min_confidence=0.8)

    queried = _build(engine, tmp_path, FILTERS, label_source=filtered_in_query)
    assert (queried.version_id, queried.created) == (counted.version_id, False)
    assert counted.created and counted.record_count == 2


@pytest.mark.parametrize("labels", [{}, WINDOW], ids=["no_filter", "window_only"])
def test_filters_not_set_exclude_nothing(engine: Engine, stored: None, tmp_path: Path,
                                         labels: dict[str, Any]) -> None:
    steps = _label_steps(_build(engine, tmp_path, labels))
    window = steps.pop("label_window")
    if labels:
        assert (window["removed"], window["labels"]["removed"]) == (1, 1)
    else:
        assert (window["input"], window["removed"], window["labels"]) == \
            (8, 0, {"input": 10, "removed": 0, "output": 10})
    for name, step in steps.items():
        assert (step["removed"], step["reasons"], step["labels"]["removed"]) == (0, {}, 0), name


def test_a_filter_that_excludes_every_label_is_named_when_the_build_is_refused(
        engine: Engine, stored: None, tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        _build(engine, tmp_path, {"min_confidence": 0.99})
    message = str(err.value)
    assert "label_min_confidence removed 8 of 8 (label_below_min_confidence: 8, " \
           "labels 10 of 10)" in message
    assert "label_provenance" not in message


def test_a_source_that_ignores_the_window_has_its_labels_counted_as_read(
        engine: Engine, stored: None, tmp_path: Path) -> None:
    labels = [make_label("ev0", {"chosen": 0, "rejected": 1}),
              make_label("ev1", {"chosen": 0, "rejected": 1}, confidence=0.2)]
    late = {"since": "2025-06-01T00:00:00Z"}  # make_label decides on 2025-03-01
    with pytest.raises(InputError, match="label_window removed 2 of 2"):
        _build(engine, tmp_path, late, label_source=lambda _s, **_k: labels)
    result = _build(engine, tmp_path, {"min_confidence": 0.5},
                    label_source=lambda _s, **_k: labels)
    steps = _label_steps(result)
    assert steps["label_min_confidence"]["removed_ids"] == \
        {"label_below_min_confidence": ["ev1"]}
    assert steps["label_window"]["labels"] == {"input": 2, "removed": 0, "output": 2}


def test_cli_build_prints_the_label_steps_with_their_label_counts(
        db_url: str, engine: Engine, stored: None, tmp_path: Path) -> None:
    from hilt.cli import app

    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps({**BASE, "labels": {"min_confidence": 0.8}}))
    out = CliRunner().invoke(app, ["dataset", "build", str(spec), "--db", db_url,
                                   "--data-dir", str(tmp_path / "ds")])
    assert out.exit_code == 0, out.output
    steps = {s["step"]: s for s in json.loads(out.stdout)["steps"]}
    assert steps["label_min_confidence"] == {
        "step": "label_min_confidence", "input": 8, "removed": 2, "output": 6,
        "reasons": {"label_below_min_confidence": 2},
        "labels": {"input": 10, "removed": 4, "output": 6}}
    assert "labels" not in steps["consent"]
