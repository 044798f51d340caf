"""A store holding ten days of review history, with a silent policy change on day 7:
from then on nine in ten of the 'borderline' verdicts come out 'harmful' under the same rubric
version. Rows are written through the review stage where it has a function for them
(rubric, reviewers, events, tasks) and directly for back-dated reviews and labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer
from hilt.events.ingest import ingest_events
from hilt.review.rubric_spec import parse_rubric
from hilt.review.rubrics import publish_rubric
from hilt.review.tasks import insert_tasks, new_id, task_row
from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.review import (
    AdjudicationRow,
    FinalLabelRow,
    ReviewRow,
    ReviewTaskRow,
)

T0 = datetime(2030, 1, 7, tzinfo=UTC)  # midnight UTC: day d is daily window d
DAYS = 10
FLIP_DAY = 7
PER_DAY = 60
REVIEWERS = ["r0", "r1", "r2", "r3"]
CHOICES = ["safe", "borderline", "harmful"]


def rubric(version_note: str = "") -> Any:
    data = {"id": "simple", "title": "Simple", "changelog": version_note or "first version",
            "guidelines": "Judge the response." + (" " + version_note if version_note else ""),
            "questions": [{"id": "verdict", "kind": "single_choice", "prompt": "ok?",
                           "options": CHOICES},
                          {"id": "note", "kind": "free_text", "prompt": "note",
                           "required": False}]}
    return parse_rubric(data, file="test")


def base(engine: Engine) -> None:
    with transaction(engine) as s:
        publish_rubric(s, rubric(), actor="lead")
        for rid in REVIEWERS:
            add_reviewer(s, reviewer_id=rid)
            s.flush()
            row = s.get(ReviewerRow, rid)
            assert row is not None
            row.status = "calibrated"


def event(i: int, at: datetime, tag: str = "coding") -> dict[str, Any]:
    return {"id": f"ev{i:05d}", "interaction": {"prompt": f"question {i} on {tag}"},
            "responses": [{"text": f"answer {i}"}], "created_at": at.isoformat(),
            "context": {"policy_version": "pol-1", "consent": ["review", "train"],
                        "tags": [tag], "source": "sim"}}


def history(engine: Engine, seed: int = 5) -> None:
    """Ten days of events, tasks, two reviews per task and final labels."""
    rng = np.random.default_rng(seed)
    events, plan = [], []
    for day in range(DAYS):
        for j in range(PER_DAY):
            at = T0 + timedelta(days=day, minutes=20 * j)
            i = day * PER_DAY + j
            events.append(event(i, at))
            verdict = CHOICES[int(rng.choice(3, p=[0.6, 0.25, 0.15]))]
            if day >= FLIP_DAY and verdict == "borderline" and rng.random() < 0.9:
                verdict = "harmful"
            plan.append((f"ev{i:05d}", at, verdict))
    ingest_events(engine, events, actor="service")
    with transaction(engine) as s:
        tasks = [task_row(event_id=eid, pool="default", severity=2, rubric_id="simple",
                          rubric_version=1, overlap_k=2, now=at) for eid, at, _ in plan]
        insert_tasks(s, tasks, actor="service", action="task.create", payload={})
        reviews, labels = [], []
        for k, (task, (eid, at, verdict)) in enumerate(zip(tasks, plan, strict=True)):
            pair = REVIEWERS[:2] if k % 2 else REVIEWERS[2:]
            ids = []
            for rid in pair:
                ids.append(new_id("rev"))
                reviews.append({"id": ids[-1], "task_id": task["id"],
                                "assignment_id": new_id("asg"), "reviewer_id": rid,
                                "rubric_id": "simple", "rubric_version": 1,
                                "answers": {"verdict": verdict}, "is_gold": False,
                                "late": False, "submitted_at": at + timedelta(minutes=5)})
            labels.append({"id": new_id("lbl"), "task_id": task["id"], "event_id": eid,
                           "rubric_id": "simple", "rubric_version": 1,
                           "question_id": "verdict", "question_kind": "single_choice",
                           "value": verdict, "provenance": "unanimous", "confidence": 1.0,
                           "review_ids": ids, "adjudication_id": None,
                           "source_task_id": None, "policy_version": "pol-1",
                           "decided_at": at + timedelta(minutes=10)})
        s.execute(sa.insert(ReviewRow), reviews)
        s.execute(sa.insert(FinalLabelRow), labels)
        for task, (_eid, at, _v) in zip(tasks, plan, strict=True):
            s.execute(sa.update(ReviewTaskRow).where(ReviewTaskRow.id == task["id"]).values(
                status="resolved", open_slots=0, reviews_done=2,
                resolved_at=at + timedelta(minutes=10)))
        # A few adjudications (steady rate), so the rate monitors have data to read.
        adjudicated = [t for k, t in enumerate(tasks) if k % 10 == 0]
        s.execute(sa.insert(AdjudicationRow), [
            {"id": new_id("adj"), "task_id": t["id"], "adjudicator_id": "lead",
             "answers": {}, "rationale": "r", "cause": "subjective", "reason": {},
             "rubric_id": "simple", "rubric_version": 1,
             "decided_at": t["created_at"] + timedelta(minutes=9)} for t in adjudicated])
