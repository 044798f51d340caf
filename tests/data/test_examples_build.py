"""Each shipped selection spec (``examples/selection``) builds a sensible version from
tasks reviewed under the shipped rubric ``examples/rubrics/harm.yaml``, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer
from hilt.data.build import build_version
from hilt.data.spec import load_spec
from hilt.events.ingest import ingest_events
from hilt.review.escalation import publish_rule_set
from hilt.review.reviews import Submission
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.review.rules import parse_rule_set
from hilt.review.workflow import work_round_robin
from hilt.store.db import transaction
from hilt.store.tables.core import EventRow, ReviewerRow
from hilt.store.tables.review import ReviewTaskRow

REPO = Path(__file__).resolve().parents[2]
SELECTION = REPO / "examples" / "selection"
REVIEWERS = ("rev-a", "rev-b")
TOPICS = ("sourdough starters", "bicycle chains", "tomato blight", "tax receipts",
          "violin strings", "solar panels", "aquarium filters", "knitting patterns",
          "chess openings")
# Per event, by i % 3: the response refuses (rewritten by the reviewers), partly
# refuses, or complies helpfully.
ANSWERS = ({"verdict": "safe", "refusal": "full_refusal", "helpfulness": 1},
           {"verdict": "safe", "refusal": "partial_refusal", "helpfulness": 3},
           {"verdict": "safe", "refusal": "complies", "helpfulness": 5})


def _events() -> list[dict[str, Any]]:
    out = []
    for i, topic in enumerate(TOPICS):
        response = (f"I cannot help with {topic}." if i % 3 == 0 else
                    f"Some of {topic} is fine to discuss, but not the details." if i % 3 == 1
                    else f"Here is a complete guide to {topic}, step by step.")
        out.append({"id": f"ex{i:02d}",
                    "interaction": {"prompt": f"How do I look after my {topic}?"},
                    "responses": [{"text": response}],
                    "context": {"subject_id": f"user{i}", "consent": ["train", "review"],
                                "metadata": {"slice": "general"}}})
    return out


def _answer(engine: Engine) -> Any:
    def answer(reviewer: str, view: dict[str, Any]) -> Submission:
        with transaction(engine) as session:
            task = session.get(ReviewTaskRow, view["task_id"])
            assert task is not None
            event = session.get(EventRow, task.event_id)
            assert event is not None
            i, prompt = int(event.id[2:]), event.payload["interaction"]["prompt"]
        rewrite = (f"Here is how to do that: {prompt.removeprefix('How do I ')[:-1]}, "
                   f"in three short steps." if i % 3 == 0 else None)
        return Submission(answers=dict(ANSWERS[i % 3]), rewrite=rewrite)
    return answer


@pytest.fixture
def reviewed(engine: Engine) -> None:
    with transaction(engine) as session:
        for rid in REVIEWERS:
            add_reviewer(session, reviewer_id=rid, role="reviewer", actor="test")
            row = session.get(ReviewerRow, rid)
            assert row is not None
            row.status = "calibrated"
        publish_rubric(session, load_rubric_file(REPO / "examples" / "rubrics" / "harm.yaml"),
                       actor="lead")
        publish_rule_set(session, parse_rule_set(
            {"id": "all", "defaults": {"rubric": "harm", "overlap": 2},
             "rules": [{"name": "every", "when": {"field": "context.metadata.slice",
                                                  "eq": "general"}}]}),
            actor="lead", activate=True)
    ingest_events(engine, _events(), actor="test")
    assert work_round_robin(engine, REVIEWERS, _answer(engine)) == 2 * len(TOPICS)


def _build(engine: Engine, name: str, tmp_path: Path) -> list[dict[str, Any]]:
    with transaction(engine) as session:
        built = build_version(session, load_spec(SELECTION / f"{name}.yaml"), actor="builder",
                              directory=tmp_path / "ds")
    path = tmp_path / "ds" / built.version_id / "records.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_shipped_specs_are_the_ones_tested() -> None:
    assert sorted(p.stem for p in SELECTION.glob("*.yaml")) == [
        "classification", "preference", "sft"]


@pytest.mark.parametrize("name", ["classification", "preference", "sft"])
def test_no_listed_source_is_switched_off_by_the_specs_own_filters(name: str) -> None:
    spec = load_spec(SELECTION / f"{name}.yaml")
    filters = spec.labels
    label_filtered = (filters.rubric_ids is not None or filters.rubric_versions is not None
                      or filters.provenance is not None or filters.min_confidence > 0)
    if label_filtered:
        # Event-level feedback has no rubric, provenance or confidence: never used then.
        assert not [s for s in spec.sources or [] if s.startswith("event_")]


def test_classification_example_maps_every_refusal_option(engine: Engine, reviewed: None,
                                                          tmp_path: Path) -> None:
    records = _build(engine, "classification", tmp_path)
    labels = {r["lineage"]["event_id"]: r["label"] for r in records}
    assert labels == {f"ex{i:02d}": "comply" if i % 3 == 2 else "refuse"
                      for i in range(len(TOPICS))}


def test_sft_example_takes_helpful_responses_and_rewrites(engine: Engine, reviewed: None,
                                                          tmp_path: Path) -> None:
    records = _build(engine, "sft", tmp_path)
    by_event = {r["lineage"]["event_id"]: r for r in records}
    assert set(by_event) == {f"ex{i:02d}" for i in range(len(TOPICS)) if i % 3 != 1}
    for event_id, record in by_event.items():
        i = int(event_id[2:])
        assert record["source"] == ("label_rewrite" if i % 3 == 0 else "label_approval")
        expected = ("in three short steps." if i % 3 == 0 else "a complete guide to")
        assert expected in record["completion"]


def test_preference_example_prefers_rewrites_over_refusals(engine: Engine, reviewed: None,
                                                           tmp_path: Path) -> None:
    records = _build(engine, "preference", tmp_path)
    assert {r["lineage"]["event_id"] for r in records} == {
        f"ex{i:02d}" for i in range(len(TOPICS)) if i % 3 == 0}
    for record in records:
        assert record["source"] == "label_rewrite"
        assert "three short steps" in record["chosen"]
        assert record["rejected"].startswith("I cannot help with")
