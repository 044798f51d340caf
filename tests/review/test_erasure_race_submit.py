"""Forgetting a subject while one of its reviewers submits: each must succeed or be
refused cleanly, never fail on a deadlock, and the end state must be one of the two the
review stage documents (:mod:`hilt.review.erasure`, :func:`hilt.review.reviews.submit_review`):

- the review lands first and is then erased with the rest of the subject's content, or
- the erasure comes first and the review is refused (``Conflict``: "task ... was
  cancelled"), leaving nothing behind.

Both run in threads released together by a barrier, many times over, through each way a
review is submitted (the one-statement PostgreSQL path alone and followed by the next
claim, and the general path). On SQLite every write transaction holds the database's
write lock, so the two are serialised; the end state is checked there too."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.errors import Conflict
from hilt.review import work
from hilt.review.queue import QueueConfig
from hilt.review.reviews import Submission, SubmitResult, submit_review
from hilt.review.tasks import create_task
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.review import AssignmentRow, FinalLabelRow, ReviewRow, ReviewTaskRow

from .helpers import one_event_per_subject, publish_examples, race_with_forget

T0 = datetime(2030, 1, 1, tzinfo=UTC)
NO_GOLD = QueueConfig(gold_rate=0.0)
TRIALS = 24
VIAS = ("submit", "submit_and_next", "general")
# Seconds the submit starts after the forget (negative: before), so that each way of
# submitting meets the erasure at several points of its transaction.
DELAYS = (0.0, -0.001, -0.002, -0.003)


def _submit(engine: Engine, via: str, task_id: str, reviewer: str, secret: str
            ) -> SubmitResult:
    sub = Submission({"verdict": "safe", "refusal": "complies", "helpfulness": 4,
                      "notes": secret}, rationale=secret, rewrite=secret)
    if via == "submit":
        return work.submit(engine, task_id, reviewer, sub, now=T0)
    if via == "submit_and_next":
        return work.submit_and_next(engine, task_id, reviewer, sub, now=T0,
                                    config=NO_GOLD)[0]
    with transaction(engine) as s:
        return submit_review(s, task_id, reviewer, sub, now=T0)


def _cancel_entry(engine: Engine, task_id: str) -> dict[str, Any] | None:
    with transaction(engine) as s:
        for entry in audit.entries(s, action="task.cancel", limit=1000):
            if task_id in entry.payload["tasks"]:
                return dict(entry.payload)
    return None


def test_forget_racing_a_submit_neither_deadlocks_nor_keeps_the_review(engine: Engine
                                                                        ) -> None:
    publish_examples(engine)
    one_event_per_subject(engine, TRIALS)
    for i in range(TRIALS):
        via, secret = VIAS[i % len(VIAS)], f"bob's secret number {i}"
        with transaction(engine) as s:
            # k = 1: the review also resolves the task (labels that quote it), k = 2 not.
            tid = create_task(s, event_id=f"ev{i:05d}", rubric="harm", actor="lead",
                              overlap_k=1 + i % 2, now=T0)
        found = work.next_task(engine, f"r{i}", now=T0, config=NO_GOLD)
        assert found is not None and found.claim.task_id == tid
        lease = found.claim.assignment_id

        out = race_with_forget(
            engine, "submit", partial(_submit, engine, via, tid, f"r{i}", secret),
            f"bob-{i}", DELAYS[i // len(VIAS) % len(DELAYS)])

        where = f"trial {i} ({via})"
        assert not isinstance(out["forget"], BaseException), f"{where}: {out['forget']!r}"
        submitted = out["submit"]
        if isinstance(submitted, BaseException):
            assert isinstance(submitted, Conflict), f"{where}: {submitted!r}"
            assert f"task {tid} was cancelled" in str(submitted), where
        with transaction(engine) as s:
            task = s.get_one(ReviewTaskRow, tid)
            reviews = s.execute(sa.select(ReviewRow).where(ReviewRow.task_id == tid)
                                ).scalars().all()
            lease_status = s.get_one(AssignmentRow, lease).status
            kept = s.execute(sa.select(sa.func.count()).select_from(ReviewRow).where(
                sa.or_(ReviewRow.rationale.is_not(None), ReviewRow.rewrite.is_not(None),
                       sa.cast(ReviewRow.answers, sa.Text).like("%secret%")))).scalar()
            labels_kept = s.execute(sa.select(sa.func.count()).select_from(FinalLabelRow)
                                    .where(sa.cast(FinalLabelRow.value, sa.Text)
                                           .like("%secret%"))).scalar()
        assert kept == 0 and labels_kept == 0, f"{where}: bob's text survived the erasure"
        cancel = _cancel_entry(engine, tid)
        ended = {row[0] for row in (cancel or {}).get("leases_ended", [])}
        if isinstance(submitted, BaseException):
            # Refused: the erasure came first, ended the lease and nothing was written.
            assert reviews == [], where
            assert task.status == "cancelled" and lease_status == "cancelled", where
            assert lease in ended, where
        else:
            # Landed first, then erased: the lease was submitted, not ended by the
            # erasure, and the review is the one the submit reported.
            assert [r.id for r in reviews] == [submitted.review_id], where
            assert lease_status == "submitted" and lease not in ended, where
            assert task.status in {"cancelled", "resolved"}, where
            assert task.status == "resolved" or cancel is not None, where


@pytest.fixture(autouse=True)
def _quiet_forget(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Forget looks for dataset folders under the data folder: an empty one of its own."""
    monkeypatch.setenv("HILT_HOME", str(tmp_path))
