"""hilt.review.work: what the one-statement path on PostgreSQL must leave to the general
path, and the sweep that resolves tasks whose resolution was interrupted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.errors import Conflict, Forbidden, InputError
from hilt.review import work
from hilt.review.queue import QueueConfig, expire_leases
from hilt.review.reviews import Submission, submit_review
from hilt.review.tasks import create_gold_task, create_task
from hilt.review.views import reviewer_task_view
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.pg_statements import run_statement
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.review import AssignmentRow, FinalLabelRow, ReviewRow, ReviewTaskRow

from .helpers import add_reviewers, event, ingest, publish_examples, spy_fast_resolutions

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SAFE = {"verdict": "safe", "refusal": "complies", "helpfulness": 4}
NO_GOLD = QueueConfig(gold_rate=0.0, lease_seconds=600)
NO_GOLD_NEW = QueueConfig(gold_rate=0.0, lease_seconds=600, resume_active=False)


def _tasks(engine: Engine, n: int, k: int, pool: str = "default") -> list[str]:
    publish_examples(engine)
    ingest(engine, [event(i) for i in range(n)])
    with transaction(engine) as s:
        return [create_task(s, event_id=f"ev{i:05d}", rubric="harm", actor="lead",
                            overlap_k=k, pool=pool, now=T0) for i in range(n)]


def test_view_is_the_reviewers_view(engine: Engine) -> None:
    (tid,) = _tasks(engine, 1, k=1)
    add_reviewers(engine, ["a"])
    found = work.next_task(engine, "a", now=T0, config=NO_GOLD, with_view=True)
    assert found is not None and found.claim.task_id == tid and found.view is not None
    with transaction(engine) as s:
        assert found.view == reviewer_task_view(s, tid, "a")
    again = work.next_task(engine, "a", now=T0, config=NO_GOLD, with_view=True)
    assert again is not None and again.claim.resumed and again.view == found.view


def test_a_changed_profile_is_seen_by_the_next_claim(engine: Engine) -> None:
    """The claim statement re-checks the cached pools and status against the row."""
    _tasks(engine, 2, k=1, pool="medical")
    add_reviewers(engine, ["a"], pools=["medical"])
    assert work.next_task(engine, "a", now=T0, config=NO_GOLD) is not None
    with transaction(engine) as s:
        s.get_one(ReviewerRow, "a").pools = ["default"]
    later = T0 + timedelta(seconds=1)
    resume = QueueConfig(gold_rate=0.0, resume_active=False)
    assert work.next_task(engine, "a", now=later, config=resume) is None
    with transaction(engine) as s:
        row = s.get_one(ReviewerRow, "a")
        row.pools, row.status = ["medical"], "suspended"
    with pytest.raises(Forbidden, match="suspended"):
        work.next_task(engine, "a", now=later, config=resume)


def test_late_and_invalid_submissions_take_the_general_path(engine: Engine) -> None:
    tids = _tasks(engine, 2, k=1)
    add_reviewers(engine, ["a"])
    first = work.next_task(engine, "a", now=T0, config=NO_GOLD)
    assert first is not None
    with pytest.raises(InputError) as err:
        work.submit(engine, first.claim.task_id, "a", Submission({"verdict": "safe"}), now=T0)
    assert err.value.field == "refusal"
    late = T0 + timedelta(hours=1)  # the lease lapsed, nobody took the slot: accepted late
    result = work.submit(engine, first.claim.task_id, "a", Submission(SAFE), now=late)
    assert result.late and result.task_status == "resolved"
    with transaction(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(ReviewRow)).scalar() == 1
    second = work.next_task(engine, "a", now=late, config=NO_GOLD)
    assert second is not None and {first.claim.task_id, second.claim.task_id} == set(tids)


def test_an_interrupted_resolution_is_swept(engine: Engine, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    (tid,) = _tasks(engine, 1, k=2)
    add_reviewers(engine, ["a", "b"])
    for rid in ("a", "b"):
        assert work.next_task(engine, rid, now=T0, config=NO_GOLD) is not None

    def crash(*_args: object, **_kwargs: object) -> str:
        raise RuntimeError("process died before resolving")

    monkeypatch.setattr(work.pg_resolve, "resolve", crash)
    monkeypatch.setattr(work, "resolve_if_complete", crash)
    work.submit(engine, tid, "a", Submission(SAFE), now=T0)
    postgres = engine.dialect.name == "postgresql"
    if postgres:  # the k-th review commits on its own, then resolution dies
        with pytest.raises(RuntimeError):
            work.submit(engine, tid, "b", Submission(SAFE), now=T0)
    else:  # SQLite: review and resolution are one transaction (and do not crash here)
        work.submit(engine, tid, "b", Submission(SAFE), now=T0)
    monkeypatch.undo()
    with transaction(engine) as s:
        task = s.get_one(ReviewTaskRow, tid)
        assert (task.status, task.reviews_done) == ("open" if postgres else "resolved", 2)
        assert work.resolve_complete_tasks(s, T0) == (1 if postgres else 0)
    with transaction(engine) as s:
        assert s.get_one(ReviewTaskRow, tid).status == "resolved"
        labels = s.execute(sa.select(FinalLabelRow).where(FinalLabelRow.task_id == tid)
                           ).scalars().all()
        assert {lb.question_id for lb in labels} >= {"verdict", "refusal"}
        assert work.resolve_complete_tasks(s, T0) == 0  # nothing left; runs are idempotent
        assert len(audit.entries(s, entity_id=tid, action="task.resolve")) == 1


def test_the_sweep_is_a_periodic_task() -> None:
    from hilt.ops.builtin import periodic_tasks

    sweep = next(t for t in periodic_tasks() if t.name == "review.resolve_complete")
    assert sweep.interval_s <= 30


def test_one_statement_resolution_writes_what_the_general_path_writes(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same reviews resolved through each path give the same labels and entry."""
    fast = spy_fast_resolutions(monkeypatch)
    tids = _tasks(engine, 2, k=3)
    add_reviewers(engine, ["a", "b", "c"])
    answers = {"a": SAFE, "b": SAFE, "c": {**SAFE, "notes": "fine"}}
    for rid in answers:  # each reviewer leases both tasks
        for _ in tids:
            assert work.next_task(engine, rid, now=T0, config=NO_GOLD_NEW) is not None
    for via, tid in zip(("transaction", "work"), tids, strict=True):
        for rid, given in answers.items():
            if via == "work":
                work.submit(engine, tid, rid, Submission(given, confidence=0.9), now=T0)
                continue
            with transaction(engine) as s:
                submit_review(s, tid, rid, Submission(given, confidence=0.9), now=T0)

    def labels(tid: str) -> list[tuple[object, ...]]:
        with transaction(engine) as s:
            rows = s.execute(sa.select(FinalLabelRow).where(FinalLabelRow.task_id == tid)
                             .order_by(FinalLabelRow.question_id)).scalars().all()
            reviewers = {i: r for i, r in s.execute(sa.select(ReviewRow.id,
                                                              ReviewRow.reviewer_id))}
            return [(r.question_id, r.question_kind, r.value, r.provenance,
                     round(r.confidence, 9), sorted(reviewers[i] for i in r.review_ids),
                     r.policy_version, r.rubric_id, r.rubric_version, r.decided_at)
                    for r in rows]

    assert len(labels(tids[0])) >= 3 and labels(tids[0]) == labels(tids[1])
    with transaction(engine) as s:
        entries = [audit.entries(s, entity_id=t, action="task.resolve") for t in tids]
    assert [len(e) for e in entries] == [1, 1]
    # On PostgreSQL the second task went through the two-statement resolution.
    assert fast == (["resolved"] if engine.dialect.name == "postgresql" else [])
    assert entries[0][0].payload == entries[1][0].payload


def test_a_broken_connection_is_not_reused(engine: Engine) -> None:
    """A backend that dies under the one-statement path fails that request only."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the one-statement path runs on PostgreSQL only")
    _tasks(engine, 2, k=1)
    add_reviewers(engine, ["a"])
    assert work.next_task(engine, "a", now=T0, config=NO_GOLD) is not None
    # the connection the next one-statement call will get (kept checked out, LIFO)
    (pid,) = run_statement(engine, "SELECT pg_backend_pid()", {})
    killer = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    with killer.begin() as other:
        other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    killer.dispose()
    resume = QueueConfig(gold_rate=0.0, resume_active=False)
    with pytest.raises(sa.exc.DBAPIError) as err:
        work.next_task(engine, "a", now=T0, config=resume)
    assert err.value.connection_invalidated
    again = work.next_task(engine, "a", now=T0, config=resume)  # a fresh connection
    assert again is not None and not again.claim.resumed


def _kth_review_read(engine: Engine) -> tuple[str, Any, Any]:
    """A task with k = 2 and one review in; the second review recorded by the
    one-statement submission (without resolving): its folded read, and _READ's."""
    from hilt.quality.aggregation_store import RECENT_FITS
    from hilt.review import pg_fast, pg_resolve
    from hilt.review.reviews import clean_submission, engine_spec, review_record

    (tid,) = _tasks(engine, 1, k=2)
    add_reviewers(engine, ["a", "b"])
    for rid in ("a", "b"):
        assert work.next_task(engine, rid, now=T0, config=NO_GOLD) is not None
    work.submit(engine, tid, "a", Submission(SAFE, confidence=0.7), now=T0)
    facts = pg_fast.task_facts(engine, tid)
    assert facts is not None
    spec = engine_spec(engine, facts.rubric_id, facts.rubric_version)
    later = T0 + timedelta(seconds=5)
    given = Submission(SAFE, confidence=0.8)
    review, entry = review_record(tid, "b", given, clean_submission(spec, given, 1),
                                  now=later, assignment_id=None, rubric_id="harm",
                                  rubric_version=facts.rubric_version, is_gold=False,
                                  late=False)
    with pg_fast.Statements(engine) as stmts:
        recorded = pg_fast.submit(stmts, review, entry)
        assert recorded is not None and recorded.counted == (2, 2, "open")
        fresh = stmts.run(pg_resolve._READ, {"task_id": tid, "recent": RECENT_FITS})
    return tid, recorded.task_read, fresh


def test_the_kth_submission_reads_what_resolution_reads(engine: Engine) -> None:
    """The submission statement returns the task's resolution inputs, its own review
    included although its snapshot predates it, exactly as a separate read gives them."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the one-statement path runs on PostgreSQL only")
    _, folded, fresh = _kth_review_read(engine)
    assert folded is not None and len(folded[-2]) == 2
    assert tuple(folded) == tuple(fresh)


def test_a_folded_read_missing_a_review_is_read_again(engine: Engine) -> None:
    """A review committed after the submission statement's snapshot is missing from its
    read; resolution then reads the task again instead of resolving without it."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the one-statement path runs on PostgreSQL only")
    from hilt.review import pg_fast, pg_resolve

    tid, folded, _ = _kth_review_read(engine)
    stale = (*folded[:-2], folded[-2][1:], folded[-1])  # as if "a" had not committed yet
    with pg_fast.Statements(engine) as stmts:
        assert pg_resolve.resolve(stmts, tid, now=T0, actor="b", known=stale) == "resolved"
    with transaction(engine) as s:
        labels = s.execute(sa.select(FinalLabelRow).where(FinalLabelRow.task_id == tid)
                           ).scalars().all()
        assert labels and all(len(lb.review_ids) == 2 for lb in labels)


def _leases(engine: Engine, reviewer: str) -> list[tuple[str, str]]:
    with transaction(engine) as s:
        return [tuple(r) for r in s.execute(  # type: ignore[misc]
            sa.select(AssignmentRow.task_id, AssignmentRow.status)
            .where(AssignmentRow.reviewer_id == reviewer).order_by(AssignmentRow.claimed_at,
                                                                   AssignmentRow.task_id))]


def _actions(engine: Engine, tid: str) -> list[str]:
    with transaction(engine) as s:
        return sorted(e.action for e in audit.entries(s, entity_id=tid))


def test_submit_and_next_is_submit_then_next_task(engine: Engine,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The same rows and audit entries as the two calls one after the other; the lease
    just submitted is never the one handed back, even when unexpired leases resume."""
    tids = _tasks(engine, 4, k=1)
    add_reviewers(engine, ["a", "b"])
    first = work.next_task(engine, "a", now=T0, config=NO_GOLD)
    assert first is not None
    with monkeypatch.context() as m:
        if engine.dialect.name == "postgresql":  # one statement: no separate calls
            for name in ("claim", "submit"):
                m.setattr(work.pg_fast, name, None)
            m.setattr(work, "_next_task", None)
        result, nxt = work.submit_and_next(engine, first.claim.task_id, "a",
                                           Submission(SAFE), now=T0, config=NO_GOLD,
                                           with_view=True)
    assert result.task_status == "resolved" and not result.late
    assert nxt is not None and nxt.claim.task_id != first.claim.task_id
    assert not nxt.claim.resumed and nxt.view is not None
    with transaction(engine) as s:
        assert nxt.view == reviewer_task_view(s, nxt.claim.task_id, "a")
    # b does the same work in two calls.
    one = work.next_task(engine, "b", now=T0, config=NO_GOLD)
    assert one is not None
    work.submit(engine, one.claim.task_id, "b", Submission(SAFE), now=T0)
    two = work.next_task(engine, "b", now=T0, config=NO_GOLD)
    assert two is not None
    assert [st for _, st in _leases(engine, "a")] == ["submitted", "active"]
    assert [st for _, st in _leases(engine, "b")] == ["submitted", "active"]
    assert _actions(engine, first.claim.task_id) == _actions(engine, one.claim.task_id)
    assert _actions(engine, nxt.claim.task_id) == _actions(engine, two.claim.task_id)
    assert {first.claim.task_id, nxt.claim.task_id, one.claim.task_id,
            two.claim.task_id} == set(tids)
    with transaction(engine) as s:
        audit.seal(s)
        assert audit.verify(s).ok


def test_submit_and_next_resumes_another_held_lease(engine: Engine) -> None:
    _tasks(engine, 3, k=1)
    add_reviewers(engine, ["a"])
    first = work.next_task(engine, "a", now=T0, config=NO_GOLD_NEW)
    second = work.next_task(engine, "a", now=T0, config=NO_GOLD_NEW)
    assert first is not None and second is not None
    _, nxt = work.submit_and_next(engine, first.claim.task_id, "a", Submission(SAFE),
                                  now=T0, config=NO_GOLD)
    assert nxt is not None and nxt.claim.resumed
    assert nxt.claim.task_id == second.claim.task_id
    assert nxt.claim.assignment_id == second.claim.assignment_id


def test_a_refused_submission_leases_nothing(engine: Engine) -> None:
    _tasks(engine, 3, k=1)
    add_reviewers(engine, ["a", "b"])
    first = work.next_task(engine, "a", now=T0, config=NO_GOLD)
    assert first is not None
    with pytest.raises(InputError) as err:  # invalid for its rubric version
        work.submit_and_next(engine, first.claim.task_id, "a",
                             Submission({"verdict": "safe"}), now=T0, config=NO_GOLD)
    assert err.value.field == "refusal"
    late = T0 + timedelta(hours=1)  # a's lease lapsed and b took the only slot
    with transaction(engine) as s:
        assert expire_leases(s, late) == 1
    taken = work.next_task(engine, "b", now=late, config=NO_GOLD)
    assert taken is not None and taken.claim.task_id == first.claim.task_id
    with pytest.raises(Conflict, match="lease"):
        work.submit_and_next(engine, first.claim.task_id, "a", Submission(SAFE),
                             now=late, config=NO_GOLD)
    assert _leases(engine, "a") == [(first.claim.task_id, "expired")]
    with transaction(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(ReviewRow)).scalar() == 0


def test_submit_and_next_on_an_empty_queue_and_a_changed_profile(engine: Engine) -> None:
    _tasks(engine, 2, k=1, pool="medical")
    add_reviewers(engine, ["a"], pools=["medical"])
    first = work.next_task(engine, "a", now=T0, config=NO_GOLD)
    assert first is not None
    with transaction(engine) as s:
        s.get_one(ReviewerRow, "a").pools = ["default"]
    result, nxt = work.submit_and_next(engine, first.claim.task_id, "a", Submission(SAFE),
                                       now=T0, config=NO_GOLD)
    assert result.task_status == "resolved" and nxt is None  # recorded; no medical work
    with transaction(engine) as s:
        s.get_one(ReviewerRow, "a").pools = ["medical"]
    second = work.next_task(engine, "a", now=T0, config=NO_GOLD)
    assert second is not None
    result, nxt = work.submit_and_next(engine, second.claim.task_id, "a", Submission(SAFE),
                                       now=T0, config=NO_GOLD)
    assert result.task_status == "resolved" and nxt is None  # the queue is empty
    assert [st for _, st in _leases(engine, "a")] == ["submitted", "submitted"]


def test_submit_and_next_draws_gold_at_the_configured_rate(engine: Engine) -> None:
    _tasks(engine, 2, k=1)
    with transaction(engine) as s:
        gold = create_gold_task(s, event_id="ev00000", rubric="harm", answers=SAFE,
                                actor="lead", now=T0)
    add_reviewers(engine, ["a"])
    first = work.next_task(engine, "a", now=T0, config=NO_GOLD)
    assert first is not None
    always = QueueConfig(gold_rate=1.0, lease_seconds=600)
    _, nxt = work.submit_and_next(engine, first.claim.task_id, "a", Submission(SAFE),
                                  now=T0, config=always)
    assert nxt is not None and nxt.claim.task_id == gold
    result, nxt = work.submit_and_next(engine, gold, "a", Submission(SAFE), now=T0,
                                       config=always)  # no gold left: real work
    assert result.task_status == "gold" and nxt is not None and nxt.claim.task_id != gold
