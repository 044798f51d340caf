"""Claim, lease, heartbeat, expiry, late submission, pools, gold and reviewer status."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.errors import Conflict, Forbidden, InputError, NotFound
from hilt.quality import CalibrationConfig
from hilt.quality.store import set_reviewer_status, update_reviewer_statuses
from hilt.review import work
from hilt.review.queue import QueueConfig, claim_next, expire_leases, heartbeat, release
from hilt.review.reviews import Submission, submit_review
from hilt.review.tasks import create_gold_task, create_task
from hilt.review.views import reviewer_task_view
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.review import AssignmentRow, ReviewRow, ReviewTaskRow

from .helpers import add_reviewers, event, ingest, publish_examples

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SAFE = {"verdict": "safe", "refusal": "complies", "helpfulness": 4}
NO_GOLD = QueueConfig(gold_rate=0.0, lease_seconds=600)


def _setup(engine: Engine, n_events: int = 2, k: int = 2, pool: str = "default",
           skills: list[str] | None = None) -> list[str]:
    publish_examples(engine)
    ingest(engine, [event(i) for i in range(n_events)])
    with transaction(engine) as s:
        return [create_task(s, event_id=f"ev{i:05d}", rubric="harm", actor="lead",
                            overlap_k=k, pool=pool, skills=skills, now=T0)
                for i in range(n_events)]


# Every test runs twice: through the session-level functions in a transaction of the
# test's own, and through hilt.review.work (what HTTP and the CLI call; one statement per
# request on PostgreSQL in the common case, the general path otherwise).
_ENTRY = {"via": "transaction"}


@pytest.fixture(params=["transaction", "work"], autouse=True)
def entry(request: pytest.FixtureRequest) -> str:
    _ENTRY["via"] = request.param
    return str(request.param)


def _claim(engine: Engine, rid: str, now: datetime = T0, config: QueueConfig = NO_GOLD):
    if _ENTRY["via"] == "work":
        found = work.next_task(engine, rid, now=now, config=config)
        return None if found is None else found.claim
    with transaction(engine) as s:
        return claim_next(s, rid, now=now, config=config)


def _submit(engine: Engine, tid: str, rid: str, now: datetime = T0, answers=None):
    sub = Submission(answers or SAFE, confidence=0.8, rationale="r", time_spent_s=12.5)
    if _ENTRY["via"] == "work":
        return work.submit(engine, tid, rid, sub, now=now)
    with transaction(engine) as s:
        return submit_review(s, tid, rid, sub, now=now)


def test_k_distinct_reviewers_then_resolved(engine: Engine) -> None:
    (tid,) = _setup(engine, n_events=1, k=2)
    add_reviewers(engine, ["a", "b", "c"])
    ca = _claim(engine, "a")
    assert ca is not None and ca.task_id == tid
    again = _claim(engine, "a")  # an unexpired lease is resumed, not duplicated
    assert again is not None and again.resumed and again.assignment_id == ca.assignment_id
    cb = _claim(engine, "b")
    assert cb is not None and cb.task_id == tid
    assert _claim(engine, "c") is None  # both slots are leased
    # a minute after the claim: the time spent a review records is at most that long
    assert _submit(engine, tid, "a", now=T0 + timedelta(minutes=1)).task_status == "open"
    assert _claim(engine, "a") is None  # never the same reviewer twice
    with pytest.raises(Conflict, match="already submitted"):
        _submit(engine, tid, "a")
    res = _submit(engine, tid, "b")
    assert res.task_status == "resolved" and not res.late
    with transaction(engine) as s:
        review = s.execute(sa.select(ReviewRow).where(ReviewRow.reviewer_id == "a")).scalar_one()
        assert (review.rubric_id, review.rubric_version) == ("harm", 1)
        assert (review.confidence, review.rationale, review.time_spent_s) == (0.8, "r", 12.5)
        actions = [e.action for e in audit.entries(s, entity_id=tid, limit=50)]
    assert actions.count("task.claim") == 2 and "task.resolve" in actions


def test_invalid_answers_write_nothing(engine: Engine) -> None:
    (tid,) = _setup(engine, n_events=1, k=1)
    add_reviewers(engine, ["a"])
    assert _claim(engine, "a") is not None
    with pytest.raises(InputError) as err:
        _submit(engine, tid, "a", answers={"verdict": "safe"})
    assert err.value.field == "refusal"
    with transaction(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(ReviewRow)).scalar() == 0
    with pytest.raises(NotFound):
        _submit(engine, tid, "nobody")
    for spent in (float("nan"), float("inf"), -1.0):
        with pytest.raises(InputError) as err, transaction(engine) as s:
            submit_review(s, tid, "a", Submission(SAFE, time_spent_s=spent), now=T0)
        assert err.value.field == "time_spent_s"


def test_lease_expiry_with_a_controlled_clock(engine: Engine) -> None:
    (tid,) = _setup(engine, n_events=1, k=1)
    add_reviewers(engine, ["a", "b"])
    assert _claim(engine, "a") is not None
    with transaction(engine) as s:  # heartbeat extends the lease
        new_expiry = heartbeat(s, tid, "a", now=T0 + timedelta(seconds=500), config=NO_GOLD)
    assert new_expiry == T0 + timedelta(seconds=1100)
    assert _claim(engine, "b", now=T0 + timedelta(seconds=1000)) is None
    later = T0 + timedelta(seconds=1101)
    with transaction(engine) as s, pytest.raises(Conflict, match="expired"):
        heartbeat(s, tid, "a", now=later)
    cb = _claim(engine, "b", now=later)  # expiry returned the slot
    assert cb is not None and cb.task_id == tid
    with pytest.raises(Conflict, match="expired at .* taken by other reviewers"):
        _submit(engine, tid, "a", now=later)
    assert _submit(engine, tid, "b", now=later).task_status == "resolved"
    with transaction(engine) as s:
        lease = s.execute(sa.select(AssignmentRow).where(AssignmentRow.reviewer_id == "a")
                          ).scalar_one()
        assert lease.status == "expired"
        assert audit.entries(s, action="task.lease_expired")


def test_late_submission_accepted_while_the_slot_is_free(engine: Engine) -> None:
    tids = _setup(engine, n_events=2, k=1)
    add_reviewers(engine, ["a", "b"])
    first = _claim(engine, "a")
    assert first is not None
    late = T0 + timedelta(hours=1)
    # Not yet swept: the slot is still this reviewer's.
    assert _submit(engine, first.task_id, "a", now=late).late
    second = _claim(engine, "a", now=late)
    assert second is not None
    with transaction(engine) as s:
        assert expire_leases(s, late + timedelta(hours=1)) == 1
    # Swept, but nobody took the slot: still accepted, marked late.
    res = _submit(engine, second.task_id, "a", now=late + timedelta(hours=2))
    assert res.late and res.task_status == "resolved"
    assert set(tids) == {first.task_id, second.task_id}


def test_release_returns_the_task_to_others(engine: Engine) -> None:
    (tid,) = _setup(engine, n_events=1, k=1)
    add_reviewers(engine, ["a", "b"])
    assert _claim(engine, "a") is not None
    with transaction(engine) as s:
        release(s, tid, "a", now=T0)
    assert _claim(engine, "a") is None
    cb = _claim(engine, "b")
    assert cb is not None and cb.task_id == tid


def test_pools_and_skills_are_respected(engine: Engine) -> None:
    (tid,) = _setup(engine, n_events=1, k=1, pool="medical", skills=["clinical"])
    add_reviewers(engine, ["general"])
    add_reviewers(engine, ["pool-only"], pools=["medical"])
    add_reviewers(engine, ["clinician"], pools=["medical", "default"],
                  skills=["clinical", "law"])
    assert _claim(engine, "general") is None
    assert _claim(engine, "pool-only") is None
    got = _claim(engine, "clinician")
    assert got is not None and got.task_id == tid


def test_reviewer_status_controls_assignment(engine: Engine) -> None:
    _setup(engine, n_events=2, k=3)
    with transaction(engine) as s:
        gold = create_gold_task(s, event_id="ev00000", rubric="harm", answers=SAFE,
                                actor="lead", now=T0)
    add_reviewers(engine, ["new"], status="onboarding")
    add_reviewers(engine, ["out"], status="suspended")
    add_reviewers(engine, ["ok"], status="calibrated")
    with pytest.raises(Forbidden, match="suspended"):
        _claim(engine, "out")
    got = _claim(engine, "new")
    assert got is not None and got.task_id == gold  # onboarding: gold only
    _submit(engine, gold, "new")
    assert _claim(engine, "new") is None  # no more gold; real work withheld
    always_gold = QueueConfig(gold_rate=1.0)
    got = _claim(engine, "ok", config=always_gold)
    assert got is not None and got.task_id == gold
    with transaction(engine) as s:
        assert s.get(ReviewTaskRow, gold).status == "gold"  # never resolved, shared


def _heartbeat(engine: Engine, tid: str, rid: str, now: datetime = T0):
    with transaction(engine) as s:
        return heartbeat(s, tid, rid, now=now, config=NO_GOLD)


def test_suspension_ends_the_reviewers_leases(engine: Engine) -> None:
    (tid,) = _setup(engine, n_events=1, k=1)
    add_reviewers(engine, ["out", "ok"])
    claim = _claim(engine, "out")
    assert claim is not None and claim.task_id == tid
    with transaction(engine) as s:
        set_reviewer_status(s, "out", "suspended", actor="lead", reason="spot check",
                            now=T0)
    with transaction(engine) as s:
        lease = s.get(AssignmentRow, claim.assignment_id)
        assert lease is not None and lease.status == "released"
        assert s.get(ReviewTaskRow, tid).open_slots == 1  # the slot is back
        revoked = audit.entries(s, action="task.lease_revoked")
        assert [(e.entity_id, e.payload["reviewer"]) for e in revoked] == [(tid, "out")]
    with pytest.raises(Forbidden, match="suspended"):
        _heartbeat(engine, tid, "out")
    with pytest.raises(Forbidden, match="suspended"):
        _submit(engine, tid, "out")
    got = _claim(engine, "ok")  # the freed slot goes to another reviewer
    assert got is not None and got.task_id == tid


def test_a_suspended_reviewer_can_neither_heartbeat_nor_submit(engine: Engine) -> None:
    # The status written directly (as by another process): the lease is still active,
    # and the reviewer's status alone must refuse both.
    (tid,) = _setup(engine, n_events=1, k=1)
    add_reviewers(engine, ["out"])
    claim = _claim(engine, "out")
    assert claim is not None
    with transaction(engine) as s:
        s.execute(sa.update(ReviewerRow).where(ReviewerRow.id == "out")
                  .values(status="suspended"))
    with pytest.raises(Forbidden, match="suspended"):
        _heartbeat(engine, tid, "out")
    with pytest.raises(Forbidden, match="suspended"):
        _submit(engine, tid, "out")
    with transaction(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(ReviewRow)).scalar() == 0
        assert s.get(ReviewTaskRow, tid).reviews_done == 0


def test_a_suspension_by_the_status_machine_ends_the_leases(engine: Engine) -> None:
    publish_examples(engine)
    ingest(engine, [event(i) for i in range(11)])
    with transaction(engine) as s:
        for i in range(11):
            create_gold_task(s, event_id=f"ev{i:05d}", rubric="harm", answers=SAFE,
                             actor="lead", now=T0)
    add_reviewers(engine, ["bad"], status="onboarding")
    wrong = {"verdict": "harmful", "refusal": "full_refusal", "helpfulness": 1}
    for _ in range(10):  # two failed calibration sets of five
        claim = _claim(engine, "bad")
        assert claim is not None
        _submit(engine, claim.task_id, "bad", answers=wrong)
    held = _claim(engine, "bad")
    assert held is not None
    config = CalibrationConfig(calibration_set_size=5, max_calibration_attempts=2)
    with transaction(engine) as s:
        changes = update_reviewer_statuses(s, config, now=T0)
    assert [(c["reviewer"], c["new"]) for c in changes] == [("bad", "suspended")]
    with transaction(engine) as s:
        lease = s.get(AssignmentRow, held.assignment_id)
        assert lease is not None and lease.status == "released"
        assert [e.entity_id for e in audit.entries(s, action="task.lease_revoked")] \
            == [held.task_id]
    with pytest.raises(Forbidden, match="suspended"):
        _submit(engine, held.task_id, "bad")


def test_gold_rate_mixes_gold_in(engine: Engine) -> None:
    tids = _setup(engine, n_events=8, k=1)
    with transaction(engine) as s:
        golds = [create_gold_task(s, event_id=f"ev{i:05d}", rubric="harm", answers=SAFE,
                                  actor="lead", now=T0) for i in range(8)]
    add_reviewers(engine, ["r"])
    rng = random.Random(3)
    got = []
    config = QueueConfig(gold_rate=0.5)
    for _ in range(16):
        with transaction(engine) as s:
            c = claim_next(s, "r", now=T0, config=config, rng=rng)
        assert c is not None
        got.append(c.task_id)
        _submit(engine, c.task_id, "r")
    assert set(got) == set(tids) | set(golds)


def test_blind_view_shows_item_and_rubric_only(engine: Engine) -> None:
    (tid,) = _setup(engine, n_events=1, k=2)
    add_reviewers(engine, ["a", "b"])
    _claim(engine, "a")
    _submit(engine, tid, "a", answers={**SAFE, "notes": "secret reasoning"})
    _claim(engine, "b")
    with transaction(engine) as s:
        view = reviewer_task_view(s, tid, "b")
        with pytest.raises(NotFound):
            reviewer_task_view(s, tid, "nobody")
    text = str(view)
    assert "secret reasoning" not in text and "is_gold" not in text
    assert "severity" not in view and "reviews_done" not in text
    assert view["item"]["interaction"]["prompt"].startswith("question number 0")
    assert view["rubric"]["spec"]["guidelines"]
