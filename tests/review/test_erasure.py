"""Forgetting a subject stops the review work on its events: pending tasks are cancelled,
their leases end, and nothing of them is claimed, submitted, adjudicated or labelled
again; near-duplicates of other subjects that waited on them go back to the queue."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.data.forget import forget
from hilt.errors import Conflict
from hilt.review import work
from hilt.review.adjudication import adjudicate, pending
from hilt.review.queue import QueueConfig, claim_next, heartbeat
from hilt.review.reviews import Submission, submit_review
from hilt.review.tasks import create_gold_task, create_task
from hilt.review.triage import cluster_open_tasks
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.core import EventRow
from hilt.store.tables.review import AssignmentRow, FinalLabelRow, ReviewTaskRow

from .helpers import add_reviewers, event, ingest, publish_examples

T0 = datetime(2030, 1, 1, tzinfo=UTC)
NO_GOLD = QueueConfig(gold_rate=0.0)
SAFE = {"verdict": "safe", "refusal": "complies", "helpfulness": 4}
HARMFUL = {"verdict": "harmful", "refusal": "complies", "helpfulness": 2}
NEAR = ("how should the seedlings in the long tray by the south window be watered "
        "during a hot and dry week in the middle of summer")


def _ingest(engine: Engine) -> None:
    """ev00000/ev00001 belong to zed, ev00002/ev00003 to amy; ev00000 and ev00002 are
    near duplicates."""
    events = [event(0, f"Question: {NEAR}?"), event(1), event(2, f"Question, {NEAR}?"),
              event(3)]
    for ev, who in zip(events, ("zed", "zed", "amy", "amy"), strict=True):
        ev["context"]["subject_id"] = who
    ingest(engine, events)


def _task(engine: Engine, i: int, *, k: int = 2, priority: float | None = None) -> str:
    with transaction(engine) as s:
        tid = create_task(s, event_id=f"ev{i:05d}", rubric="harm", actor="lead",
                          overlap_k=k, now=T0)
        if priority is not None:
            s.get_one(ReviewTaskRow, tid).priority = priority
        return tid


def _claim(engine: Engine, rid: str, config: QueueConfig = NO_GOLD) -> str | None:
    found = work.next_task(engine, rid, now=T0, config=config)
    return None if found is None else found.claim.task_id


def _review(engine: Engine, rid: str, answers: dict[str, object]) -> str:
    tid = _claim(engine, rid)
    assert tid is not None
    work.submit(engine, tid, rid, Submission(answers), now=T0)
    return tid


def _status(engine: Engine) -> dict[str, str]:
    with transaction(engine) as s:
        return dict(s.execute(sa.select(ReviewTaskRow.id, ReviewTaskRow.status)).all())


def test_forget_cancels_the_subjects_pending_review_work(engine: Engine) -> None:
    publish_examples(engine)
    _ingest(engine)
    add_reviewers(engine, ["a", "b", "c", "d"])
    add_reviewers(engine, ["adj"], role="adjudicator")
    # zed's ev00001: a disagreement waiting for an adjudicator
    disputed = _task(engine, 1)
    assert _review(engine, "a", SAFE) == disputed
    assert _review(engine, "b", HARMFUL) == disputed
    # zed's ev00000: an open task that c holds a lease on, representing amy's near
    # duplicate; and a gold item on the same event
    held = _task(engine, 0, priority=10.0)
    member = _task(engine, 2)
    assert _claim(engine, "c") == held
    with transaction(engine) as s:
        assert cluster_open_tasks(s, T0) == 1
        assert s.get_one(ReviewTaskRow, member).representative_id == held
        gold = create_gold_task(s, event_id="ev00000", rubric="harm", answers=SAFE,
                                actor="lead", now=T0)
    assert _status(engine)[disputed] == "needs_adjudication"

    result = forget(engine, "zed", actor="dpo")

    counts = result.review_content_erased
    assert (counts["tasks_cancelled"], counts["leases_ended"],
            counts["tasks_unclustered"]) == (3, 1, 1)
    status = _status(engine)
    assert {status[t] for t in (disputed, held, gold)} == {"cancelled"}
    with transaction(engine) as s:
        lease = s.execute(sa.select(AssignmentRow).where(
            AssignmentRow.task_id == held, AssignmentRow.reviewer_id == "c")).scalar_one()
        assert lease.status == "cancelled"
        freed = s.get_one(ReviewTaskRow, member)
        assert (freed.status, freed.representative_id, freed.cluster_id,
                freed.open_slots) == ("open", None, None, 2)
        # The lease holder's submission and heartbeat are refused, and nothing is written.
        with pytest.raises(Conflict, match="erased"):
            heartbeat(s, held, "c", now=T0)
        assert not pending(s)
    with pytest.raises(Conflict, match="erased"):
        work.submit(engine, held, "c", Submission(SAFE), now=T0)
    with transaction(engine) as s, pytest.raises(Conflict, match="cancelled"):
        adjudicate(s, disputed, "adj", answers={"verdict": "safe"}, rationale="r",
                   cause="subjective")
    # Only amy's task is served any more; gold draws find nothing either.
    assert _claim(engine, "d") == member
    assert _claim(engine, "d") == member  # resumed
    assert _claim(engine, "c") == member
    # both of its slots are taken now, and the gold item is cancelled
    assert _claim(engine, "a", QueueConfig(gold_rate=1.0)) is None
    add_reviewers(engine, ["new"], status="onboarding")
    assert _claim(engine, "new") is None
    with transaction(engine) as s:
        labelled = set(s.execute(sa.select(FinalLabelRow.event_id).where(
            FinalLabelRow.provenance != "gold")).scalars())
        assert not labelled & {"ev00000", "ev00001"}
        reviews = s.execute(sa.text("SELECT count(*) FROM reviews")).scalar_one()
        assert reviews == 2
        (entry,) = audit.entries(s, action="task.cancel")
        assert sorted(entry.payload["tasks"]) == sorted([disputed, held, gold])
        assert entry.payload["unclustered"] == [member]
        assert audit.verify(s).ok


def test_tasks_on_an_erased_event_are_never_served_or_submitted(engine: Engine) -> None:
    """A task can outlive the erasure of its event when it was made from a read taken
    before the erasure committed (escalation runs in its own transaction): the claim
    skips it and a submission under a lease on it is refused, on every path."""
    publish_examples(engine)
    _ingest(engine)
    add_reviewers(engine, ["a", "b"])
    held = _task(engine, 1, priority=10.0)
    assert _claim(engine, "a") == held
    late = _task(engine, 0)
    with transaction(engine) as s:
        s.execute(sa.update(EventRow).where(EventRow.subject_id == "zed")
                  .values(payload={"erased": True}, erased_at=T0))
    assert _status(engine) == {held: "open", late: "open"}
    for submit in ("work", "session"):
        with pytest.raises(Conflict, match="erased"):
            if submit == "work":
                work.submit(engine, held, "a", Submission(SAFE), now=T0)
            else:
                with transaction(engine) as s:
                    submit_review(s, held, "a", Submission(SAFE), now=T0)
    assert _claim(engine, "b") is None
    with transaction(engine) as s:
        assert claim_next(s, "b", now=T0, config=NO_GOLD) is None
        assert s.execute(sa.text("SELECT count(*) FROM reviews")).scalar_one() == 0
        assert not s.execute(sa.select(FinalLabelRow)).first()
