"""Forgetting a subject while a lease on one of its tasks ends another way (given back
by its reviewer, or swept as expired): both paths take the lease before its task, so
neither may fail on a deadlock, and the lease ends exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.errors import Conflict
from hilt.review import work
from hilt.review.queue import QueueConfig, expire_leases, release
from hilt.review.tasks import create_task
from hilt.store.db import transaction
from hilt.store.tables.review import AssignmentRow, ReviewTaskRow

from .helpers import one_event_per_subject, publish_examples, race_with_forget

T0 = datetime(2030, 1, 1, tzinfo=UTC)
NO_GOLD = QueueConfig(gold_rate=0.0)
TRIALS = 16
# Seconds the lease's end starts after the forget (negative: before).
DELAYS = (0.0, -0.001, -0.002, -0.003)


def _end(engine: Engine, how: str, task_id: str, reviewer: str) -> int:
    with transaction(engine) as s:
        if how == "release":
            release(s, task_id, reviewer, now=T0)
            return 1
        return expire_leases(s, T0 + timedelta(days=1))


@pytest.mark.parametrize("how", ["release", "expire"])
def test_forget_racing_the_end_of_a_lease_does_not_deadlock(engine: Engine, how: str,
                                                             tmp_path: Any,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.setenv("HILT_HOME", str(tmp_path))
    publish_examples(engine)
    one_event_per_subject(engine, TRIALS)
    for i in range(TRIALS):
        with transaction(engine) as s:
            tid = create_task(s, event_id=f"ev{i:05d}", rubric="harm", actor="lead",
                              overlap_k=2, now=T0)
        found = work.next_task(engine, f"r{i}", now=T0, config=NO_GOLD)
        assert found is not None and found.claim.task_id == tid

        out = race_with_forget(engine, "end", partial(_end, engine, how, tid, f"r{i}"),
                               f"bob-{i}", DELAYS[i % len(DELAYS)])

        where = f"trial {i} ({how})"
        assert not isinstance(out["forget"], BaseException), f"{where}: {out['forget']!r}"
        ended = out["end"]
        if isinstance(ended, BaseException):
            # A release that came after the erasure finds the lease ended by it.
            assert isinstance(ended, Conflict) and how == "release", f"{where}: {ended!r}"
        with transaction(engine) as s:
            lease = s.get_one(AssignmentRow, found.claim.assignment_id).status
            task = s.get_one(ReviewTaskRow, tid)
            task_status, slots = task.status, task.open_slots
            # Nothing of this trial is left for a later trial's sweep to expire.
            active = s.execute(sa.select(sa.func.count()).select_from(AssignmentRow).where(
                AssignmentRow.status == "active")).scalar()
        assert task_status == "cancelled" and slots == 0 and active == 0, where
        ended_here = not isinstance(ended, BaseException) and ended == 1
        assert lease == ({"release": "released", "expire": "expired"}[how]
                         if ended_here else "cancelled"), where
