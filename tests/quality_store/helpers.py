"""A small simulated review operation: rubric, tasks, gold, reviewers with known
confusion matrices (``hilt.sim.reviewers.ReviewerProfile``) working the real queue."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer
from hilt.events.ingest import ingest_events
from hilt.review.aggregation import AdjudicationPolicy
from hilt.review.reviews import Submission
from hilt.review.rubric_spec import parse_rubric
from hilt.review.rubrics import publish_rubric
from hilt.review.tasks import create_gold_task, insert_tasks, task_row
from hilt.sim.reviewers import ReviewerProfile
from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.review import ReviewTaskRow

CLASSES = ("safe", "borderline", "harmful")
RUBRIC: dict[str, Any] = {
    "id": "verdicts", "title": "Verdicts", "questions": [
        {"id": "verdict", "kind": "single_choice", "prompt": "Is the response safe?",
         "options": list(CLASSES)},
        {"id": "note", "kind": "free_text", "prompt": "note", "required": False}]}
T0 = datetime(2031, 1, 1, tzinfo=UTC)

POOL = (
    ReviewerProfile("rev-ada", "expert", 0.95),
    ReviewerProfile("rev-ben", "solid", 0.88),
    ReviewerProfile("rev-cai", "solid", 0.86),
    ReviewerProfile("rev-dee", "solid", 0.84),
    ReviewerProfile("rev-eli", "careless", 0.68, bias=1.0),
    ReviewerProfile("rev-fox", "spammer", 1 / 3),
    ReviewerProfile("rev-gil", "spammer", 1 / 3),
)


def true_accuracy(profile: ReviewerProfile) -> float:
    return 1 / len(CLASSES) if profile.kind == "spammer" else profile.accuracy


@dataclass
class Operation:
    engine: Engine
    truth: dict[str, int]                # event id -> true class
    task_event: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, ReviewerProfile] = field(default_factory=dict)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))

    def event_of(self, task_id: str) -> str:
        if task_id not in self.task_event:
            with self.engine.connect() as conn:
                self.task_event[task_id] = conn.execute(
                    sa.select(ReviewTaskRow.event_id).where(ReviewTaskRow.id == task_id)
                ).scalar_one()
        return self.task_event[task_id]

    def answer(self, reviewer_id: str, view: dict[str, Any]) -> Submission:
        truth = self.truth[self.event_of(view["task_id"])]
        label = self.profiles[reviewer_id].answer(truth, len(CLASSES), self.rng)
        return Submission(answers={"verdict": CLASSES[label]})

    def decide(self, case: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
        truth = self.truth[case["item"]["event_id"]]
        return {"verdict": CLASSES[truth]}, "checked against the guideline", "reviewer_error"


def setup_operation(engine: Engine, *, n_tasks: int, n_gold: int, seed: int = 7,
                    pool: tuple[ReviewerProfile, ...] = POOL, status: str = "calibrated",
                    overlap_k: int = 3, policy: AdjudicationPolicy | None = None
                    ) -> Operation:
    """Publish the rubric, create ``n_tasks`` production tasks and ``n_gold`` gold tasks
    with truth drawn from (0.5, 0.3, 0.2) (distinct priorities, so that the claim order
    is reproducible), and add the reviewers with ``status``."""
    rng = np.random.default_rng(seed)
    truth_codes = rng.choice(len(CLASSES), size=n_tasks + n_gold, p=[0.5, 0.3, 0.2])
    events: list[dict[str, Any]] = [{"id": f"ev{i:05d}", "interaction": {"prompt": f"prompt {i}"},
               "responses": [{"text": f"response {i}"}],
               "context": {"policy_version": "pol-1", "consent": ["review"]}}
              for i in range(n_tasks + n_gold)]
    ingest_events(engine, events, actor="service")
    truth: dict[str, int] = {e["id"]: int(c) for e, c in zip(events, truth_codes, strict=True)}
    with transaction(engine) as s:
        publish_rubric(s, parse_rubric(RUBRIC), actor="lead")
        rows = [task_row(event_id=e["id"], pool="default", severity=2,
                         rubric_id="verdicts", rubric_version=1, overlap_k=overlap_k,
                         now=T0, policy=(policy or AdjudicationPolicy()).model_dump())
                for e in events[:n_tasks]]
        for i, row in enumerate(rows):  # distinct priorities: a reproducible claim order
            row["priority"] = 10.0 - i / n_tasks
        insert_tasks(s, rows, actor="lead", action="task.create", payload={"rule": "test"})
        for i, e in enumerate(events[n_tasks:]):
            gold_id = create_gold_task(s, event_id=e["id"], rubric="verdicts@1",
                                       answers={"verdict": CLASSES[truth[e["id"]]]},
                                       actor="lead")
            s.execute(sa.update(ReviewTaskRow).where(ReviewTaskRow.id == gold_id)
                      .values(priority=-i / max(n_gold, 1)))
        for profile in pool:
            add_reviewer(s, reviewer_id=profile.name, actor="lead")
            s.flush()
            s.get_one(ReviewerRow, profile.name).status = status
    return Operation(engine, truth, profiles={p.name: p for p in pool},
                     rng=np.random.default_rng(seed + 1))
