"""Intervals of reviewer quality from the store: gold accuracy counted per gold task,
status changes that quote their interval, the level stated in ``hilt quality reviewers``,
and intervals on the fitted models' per-reviewer estimates."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from hilt.access import add_reviewer
from hilt.cli import app
from hilt.events.ingest import ingest_events
from hilt.ops.snapshot import quality_snapshot
from hilt.quality import CalibrationConfig
from hilt.quality.calibration import expected_count_interval
from hilt.quality.model_aggregator import ModelAggregationConfig
from hilt.quality.store import (
    latest_models,
    refresh_labels,
    reviewer_quality_report,
    update_reviewer_statuses,
)
from hilt.review.queue import QueueConfig
from hilt.review.reviews import Submission
from hilt.review.rubric_spec import parse_rubric
from hilt.review.rubrics import publish_rubric
from hilt.review.tasks import create_gold_task
from hilt.review.workflow import work_queue, work_round_robin
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.review import ReviewTaskRow

from .helpers import POOL, setup_operation

QUESTIONS = ("q1", "q2", "q3")
TRUTH = {"q1": "a", "q2": "b", "q3": "c"}
RUBRIC: dict[str, Any] = {
    "id": "triple", "title": "Three questions", "questions": [
        {"id": q, "kind": "single_choice", "prompt": f"{q}?", "options": ["a", "b", "c"]}
        for q in QUESTIONS]}
N_GOLD = 6


def _gold_work(engine: Engine) -> None:
    """Six gold tasks of three questions; reviewer ``onb`` misreads the first one it
    gets (three wrong answers at once) and answers the rest right."""
    events = [{"id": f"gold{i}", "interaction": {"prompt": f"prompt {i}"},
               "responses": [{"text": f"response {i}"}],
               "context": {"policy_version": "pol-1", "consent": ["review"]}}
              for i in range(N_GOLD)]
    ingest_events(engine, events, actor="service")
    with transaction(engine) as s:
        publish_rubric(s, parse_rubric(RUBRIC), actor="lead")
        for i, event in enumerate(events):
            gold_id = create_gold_task(s, event_id=event["id"], rubric="triple@1",
                                       answers=dict(TRUTH), actor="lead")
            s.execute(sa.update(ReviewTaskRow).where(ReviewTaskRow.id == gold_id)
                      .values(priority=-i))
        add_reviewer(s, reviewer_id="onb", actor="lead")
    seen: list[str] = []

    def answer(view: dict[str, Any]) -> Submission:
        seen.append(view["task_id"])
        if len(seen) == 1:
            return Submission(answers={"q1": "c", "q2": "a", "q3": "b"})
        return Submission(answers=dict(TRUTH))

    assert work_queue(engine, "onb", answer, config=QueueConfig(gold_rate=0.0)) == N_GOLD


def test_gold_accuracy_interval_counts_gold_tasks(engine: Engine, db_url: str,
                                                  tmp_path: Path) -> None:
    _gold_work(engine)
    config = CalibrationConfig(calibration_set_size=6, max_calibration_attempts=3)
    with transaction(engine) as s:
        changes = update_reviewer_statuses(s, config)
    (change,) = changes
    assert change["new"] == "calibrated" and change["n_gold"] == 18
    assert change["n_gold_items"] == N_GOLD and change["confidence"] == 0.95
    assert change["gold_ci_low"] <= change["gold_accuracy"] <= change["gold_ci_high"]
    # The calibration set is the six gold tasks, judged on their 15/18 right answers;
    # the interval counts the six tasks (the misread one weighs as one item, not as
    # three independent errors): Wilson's on 5 of 6.
    low, high = proportion_confint(5, 6, method="wilson")
    assert change["reason"] == (f"passed calibration set (15/18 from 6 items, 95% CI "
                                f"{low:.2f}–{high:.2f})")
    expected = proportion_confint(5, 6, method="wilson")
    with transaction(engine) as s:
        (row,) = [r for r in reviewer_quality_report(s, config) if r["reviewer"] == "onb"]
        snapshot = quality_snapshot(s, utcnow())
    assert row["n_gold"] == 18 and row["gold_correct"] == 15 and row["n_gold_items"] == 6
    assert (row["gold_ci_low"], row["gold_ci_high"]) == pytest.approx(expected, abs=1e-12)
    assert row["rolling_n_gold_items"] == 6 and row["confidence"] == 0.95
    gold = snapshot["reviewers"]["onb"]
    assert gold["n_gold_items"] == 6
    assert (gold["ci_low"], gold["ci_high"]) == pytest.approx(expected, abs=1e-12)
    # The table and the JSON state the level the intervals were computed at.
    settings = tmp_path / "cal50.yaml"
    settings.write_text("calibration:\n  confidence: 0.5\n")
    result = CliRunner().invoke(app, ["quality", "reviewers", "--db", db_url,
                                      "--config", str(settings)])
    assert result.exit_code == 0, result.output
    header, *lines = result.output.splitlines()
    assert "gold acc [50% CI]" in header and "95%" not in header
    assert "model acc [50% CI]" in header
    (line,) = [ln for ln in lines if ln.startswith("onb")]
    assert "n=18 (6 items)" in line
    result = CliRunner().invoke(app, ["quality", "reviewers", "--json", "--db", db_url,
                                      "--config", str(settings)])
    (data,) = [r for r in json.loads(result.output) if r["reviewer"] == "onb"]
    assert data["confidence"] == 0.5
    narrow = proportion_confint(5, 6, alpha=0.5, method="wilson")
    assert (data["gold_ci_low"], data["gold_ci_high"]) == pytest.approx(narrow, abs=1e-12)


def test_model_listing_gives_each_reviewer_estimate_an_interval(engine: Engine) -> None:
    pool = tuple(p for p in POOL if p.name in ("rev-ada", "rev-ben", "rev-fox"))
    op = setup_operation(engine, n_tasks=12, n_gold=4, seed=2, pool=pool)
    random.seed(0)
    work_round_robin(engine, [p.name for p in pool], op.answer,
                     config=QueueConfig(gold_rate=0.5))
    with transaction(engine) as s:
        refresh_labels(s, "verdicts", ModelAggregationConfig(min_reviewer_answers=3))
        (model,) = latest_models(s)
        report = {r["reviewer"]: r for r in reviewer_quality_report(s)}
    for entry in model["reviewers"]:
        value, low, high = expected_count_interval(
            entry["estimated_accuracy"] * entry["n_answers"], entry["n_answers"])
        assert (entry["ci_low"], entry["ci_high"]) == pytest.approx((low, high))
        assert entry["ci_low"] <= entry["estimated_accuracy"] <= entry["ci_high"]
        # The same interval as the reviewer report's model accuracy.
        same = report[entry["reviewer"]]
        assert (entry["ci_low"], entry["ci_high"]) == pytest.approx(
            (same["model_ci_low"], same["model_ci_high"]))
    assert len(model["priors_ci"]) == len(model["priors"]) == len(model["classes"])
    for prior, (low, high) in zip(model["priors"], model["priors_ci"], strict=True):
        assert low <= prior <= high
