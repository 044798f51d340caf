"""A rubric whose required preference or ranking question needs two responses is never
put on an event with fewer: by hand it is refused, by escalation it is skipped and
reported."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.review.escalation import publish_rule_set
from hilt.review.rules import parse_rule_set
from hilt.review.tasks import create_task
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewTaskRow

from .helpers import event, ingest, publish_examples


def _task_count(engine: Engine) -> int:
    with transaction(engine) as s:
        return int(s.execute(sa.select(sa.func.count()).select_from(ReviewTaskRow))
                   .scalar_one())


def test_a_preference_rubric_on_a_single_response_event_is_refused(engine: Engine) -> None:
    publish_examples(engine)
    ingest(engine, [event(1), event(2, responses=2)])
    with transaction(engine) as s, pytest.raises(InputError) as refused:
        create_task(s, event_id="ev00001", rubric="pairwise", actor="lead")
    assert refused.value.field == "rubric"
    assert "ev00001" in str(refused.value) and "pairwise@1" in str(refused.value)
    assert "better" in str(refused.value)
    assert _task_count(engine) == 0
    with transaction(engine) as s:  # two responses: the same rubric fits
        create_task(s, event_id="ev00002", rubric="pairwise", actor="lead")
        create_task(s, event_id="ev00001", rubric="harm", actor="lead")
    assert _task_count(engine) == 2


def test_escalation_skips_and_reports_events_the_rubric_cannot_answer(engine: Engine
                                                                       ) -> None:
    publish_examples(engine)
    with transaction(engine) as s:
        publish_rule_set(s, parse_rule_set({
            "id": "pairs", "defaults": {"rubric": "pairwise"},
            "rules": [{"name": "all", "audit_rate": 1.0}]}), actor="lead")
    assert ingest(engine, [event(1), event(2, responses=2)]) == 1
    with transaction(engine) as s:
        tasks = s.execute(sa.select(ReviewTaskRow.event_id)).scalars().all()
        (entry,) = audit.entries(s, action="escalation.tasks")
    assert tasks == ["ev00002"]
    assert entry.payload["skipped_unanswerable"] == [
        ["ev00001", "pairwise@1", ["better"], ["all"]]]
    # a batch where every match is unanswerable still leaves a record of the skip
    assert ingest(engine, [event(3)]) == 0
    with transaction(engine) as s:
        (skipped,) = audit.entries(s, action="escalation.skipped")
    assert skipped.payload["skipped_unanswerable"] == [
        ["ev00003", "pairwise@1", ["better"], ["all"]]]
