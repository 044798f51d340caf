"""Reviewer status from gold answers in the store, and status controlling assignment."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer
from hilt.errors import Forbidden, InputError
from hilt.quality import CalibrationConfig
from hilt.quality.store import (
    reviewer_quality_report,
    set_reviewer_status,
    update_reviewer_statuses,
)
from hilt.review.queue import QueueConfig, claim_next
from hilt.review.reviews import Submission
from hilt.review.workflow import work_queue
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables import Base
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.quality import ReviewerStatusChangeRow
from hilt.store.tables.review import ReviewTaskRow

from .helpers import CLASSES, Operation, setup_operation

CONFIG = CalibrationConfig(calibration_set_size=5, max_calibration_attempts=2)
NO_GOLD = QueueConfig(gold_rate=0.0)


def _always(op: Operation, right: bool) -> Any:
    def answer(view: dict[str, Any]) -> Submission:
        truth = op.truth[op.event_of(view["task_id"])]
        return Submission(answers={"verdict": CLASSES[truth if right else (truth + 1) % 3]})
    return answer


def _claimed_task(engine: Engine, reviewer: str) -> ReviewTaskRow | None:
    with transaction(engine) as s:
        claim = claim_next(s, reviewer, config=NO_GOLD)
        return None if claim is None else s.get(ReviewTaskRow, claim.task_id)


def test_onboarding_gold_then_production_and_failing_gold_suspends(engine: Engine) -> None:
    op = setup_operation(engine, n_tasks=4, n_gold=10, pool=(), status="onboarding")
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="new-good", actor="lead")
        add_reviewer(s, reviewer_id="new-bad", actor="lead")
    # Onboarding reviewers are offered gold only, even with no gold in the production mix.
    assert work_queue(engine, "new-good", _always(op, True), config=NO_GOLD) == 10
    assert work_queue(engine, "new-bad", _always(op, False), config=NO_GOLD) == 10
    assert _claimed_task(engine, "new-good") is None  # nothing but gold, all answered
    with transaction(engine) as s:
        changes = update_reviewer_statuses(s, CONFIG)
    assert {c["reviewer"]: c["new"] for c in changes} == {"new-good": "calibrated",
                                                         "new-bad": "suspended"}
    with transaction(engine) as s:
        assert s.get_one(ReviewerRow, "new-good").status == "calibrated"
        audited = [(e.entity_id, e.payload)
                   for e in audit.entries(s, action="reviewer.status")]
        assert {e: p["new"] for e, p in audited} == {"new-good": "calibrated",
                                                    "new-bad": "suspended"}
        history = s.execute(sa.select(ReviewerStatusChangeRow.source).where(
            ReviewerStatusChangeRow.reviewer_id == "new-bad")).scalars().all()
        assert sorted(history) == ["calibration", "initial"]
    task = _claimed_task(engine, "new-good")
    assert task is not None and not task.is_gold  # production work now
    with pytest.raises(Forbidden, match="suspended"), transaction(engine) as s:
        claim_next(s, "new-bad", config=NO_GOLD)
    # Running the update again changes nothing.
    with transaction(engine) as s:
        assert update_reviewer_statuses(s, CONFIG) == []
        rows = {r["reviewer"]: r for r in reviewer_quality_report(s, CONFIG)}
    assert rows["new-good"]["gold_accuracy"] == 1.0 and rows["new-good"]["n_gold"] == 10
    assert rows["new-bad"]["gold_accuracy"] == 0.0 and rows["new-bad"]["gold_ci_high"] < 0.35
    assert rows["new-bad"]["may_take_production_tasks"] is False


def test_a_reinstated_reviewer_starts_over(engine: Engine) -> None:
    op = setup_operation(engine, n_tasks=2, n_gold=10, pool=(), status="onboarding")
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="rev", actor="lead")
    work_queue(engine, "rev", _always(op, False), config=NO_GOLD)
    with transaction(engine) as s:
        update_reviewer_statuses(s, CONFIG)
        assert s.get_one(ReviewerRow, "rev").status == "suspended"
        with pytest.raises(InputError):
            set_reviewer_status(s, "rev", "trusted", actor="lead", reason="x")
        set_reviewer_status(s, "rev", "calibrated", actor="lead", reason="retrained")
    with transaction(engine) as s:
        # The failed gold answers predate the decision and no longer count.
        assert update_reviewer_statuses(s, CONFIG) == []
        assert s.get_one(ReviewerRow, "rev").status == "calibrated"
        manual = [e.payload for e in reversed(audit.entries(s, action="reviewer.status"))]
        assert [p["source"] for p in manual] == ["calibration", "manual"]
    assert _claimed_task(engine, "rev") is not None


def test_migration_creates_exactly_the_quality_tables(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diff if "quality_" in repr(d)]
    assert ours == []
    names = set(sa.inspect(engine).get_table_names())
    assert {"quality_aggregation_models", "quality_reviewer_status"} <= names
