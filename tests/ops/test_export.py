"""The reviews export: one line per task with its event, reviews and final labels, on
SQLite and PostgreSQL, the same whatever the page size or status filter."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.events.ingest import ingest_events
from hilt.ops.export import iter_jsonl, iter_lines
from hilt.review.tasks import create_task
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import EventRow
from hilt.store.tables.review import FinalLabelRow, ReviewRow, ReviewTaskRow

from .helpers import workload

KEYS = ["task_id", "event_id", "status", "pool", "severity", "rubric", "overlap_k", "is_gold",
        "created_at", "resolved_at", "item", "reviews", "final_labels"]


@pytest.fixture
def tasks(engine: Engine) -> list[str]:
    """Five tasks; the first two resolved, with two reviews each and a final label."""
    ids = workload(engine, 5)
    now = utcnow()
    with transaction(engine) as s:
        s.execute(sa.insert(ReviewRow), [
            {"id": f"rev-{t}-{j}", "task_id": t, "assignment_id": f"a-{t}-{j}",
             "reviewer_id": f"r{j}", "rubric_id": "simple", "rubric_version": 1,
             "answers": {"verdict": "safe" if j else "borderline"}, "is_gold": False,
             "late": False, "confidence": 0.5 * j, "rationale": "ok ✓" if j else None,
             # the second review was submitted first: reviews are listed by time
             "submitted_at": now - timedelta(seconds=j)} for t in ids[:2] for j in range(2)])
        s.execute(sa.insert(FinalLabelRow), [
            {"id": f"fl-{t}", "task_id": t, "event_id": "ev", "rubric_id": "simple",
             "rubric_version": 1, "question_id": "verdict", "question_kind": "single_choice",
             "value": "safe", "provenance": "majority", "confidence": 0.75,
             "review_ids": [f"rev-{t}-0", f"rev-{t}-1"], "decided_at": now} for t in ids[:2]])
        s.execute(sa.update(ReviewTaskRow).where(ReviewTaskRow.id.in_(ids[:2]))
                  .values(status="resolved", resolved_at=now))
    return ids


def export(engine: Engine, **kw: Any) -> list[dict[str, Any]]:
    with transaction(engine) as s:
        return [json.loads(line) for line in iter_lines(s, **kw)]


def test_line_holds_task_stored_event_reviews_and_labels(engine: Engine,
                                                         tasks: list[str]) -> None:
    lines = {x["task_id"]: x for x in export(engine)}
    assert set(lines) == set(tasks)
    first = lines[tasks[0]]
    assert list(first) == KEYS
    with transaction(engine) as s:
        task = s.get(ReviewTaskRow, tasks[0])
        assert task is not None and task.resolved_at is not None
        event = s.get(EventRow, task.event_id)
        assert event is not None
        assert first["item"] == event.payload
        assert first["created_at"] == task.created_at.isoformat()
        assert first["resolved_at"] == task.resolved_at.isoformat()
    assert (first["status"], first["rubric"], first["event_id"]) == (
        "resolved", "simple@1", task.event_id)
    assert [r["review_id"] for r in first["reviews"]] == [f"rev-{tasks[0]}-1",
                                                         f"rev-{tasks[0]}-0"]
    assert first["reviews"][0] | {"submitted_at": None} == {
        "review_id": f"rev-{tasks[0]}-1", "reviewer_id": "r1",
        "answers": {"verdict": "safe"}, "confidence": 0.5, "rationale": "ok ✓",
        "late": False, "submitted_at": None}
    assert first["final_labels"] == {"verdict": {"value": "safe", "provenance": "majority",
                                                 "confidence": 0.75}}
    assert lines[tasks[4]]["reviews"] == [] and lines[tasks[4]]["final_labels"] == {}


def test_pages_and_status_filter_do_not_change_lines(engine: Engine,
                                                     tasks: list[str]) -> None:
    whole = export(engine)
    assert export(engine, page=2) == whole
    resolved = export(engine, status="resolved", page=1)
    assert resolved == [x for x in whole if x["status"] == "resolved"]
    assert [x["task_id"] for x in resolved] == sorted(tasks[:2])
    assert all(x["reviews"] == [] for x in export(engine, status="open", page=2))


def test_text_is_utf8_and_one_line_per_task(engine: Engine, tasks: list[str]) -> None:
    ingest_events(engine, [{"id": "uni", "interaction": {"prompt": "héllo \u2028 \"q\""},
                            "responses": [{"text": "naïve"}],
                            "context": {"consent": ["review"]}}])
    with transaction(engine) as s:
        create_task(s, event_id="uni", rubric="simple", actor="lead")
    with transaction(engine) as s:
        body = b"".join(iter_jsonl(s))
    lines = body.decode("utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == len(tasks) + 2
    assert "héllo" in body.decode("utf-8") and "\\u00e9" not in body.decode("utf-8")
    items = [json.loads(x)["item"] for x in lines[:-1]]
    assert {"prompt": "héllo \u2028 \"q\"", "messages": None} in [i["interaction"]
                                                                  for i in items]


def test_a_consumer_that_stops_early_leaves_the_session_usable(engine: Engine,
                                                               tasks: list[str]) -> None:
    """The next page is read ahead on a helper thread; closing the export midway waits
    for that read, and the session's connection goes on working."""
    with transaction(engine) as s:
        lines = iter_lines(s, page=2)
        first = [json.loads(next(lines))["task_id"] for _ in range(3)]
        lines.close()
        assert first == sorted(tasks)[:3]
        assert s.execute(sa.select(sa.func.count()).select_from(ReviewTaskRow)
                         ).scalar_one() == len(tasks)


def test_a_suspended_export_does_not_hold_up_writers(engine: Engine,
                                                     tasks: list[str]) -> None:
    """While the consumer of an export is slow (the iterator suspended midway), a write
    on another connection commits at once instead of waiting for the export's lock."""
    import threading

    from hilt.store.db import session_factory

    def write() -> None:
        with transaction(engine) as w:
            w.execute(sa.update(ReviewTaskRow).where(ReviewTaskRow.id == tasks[4])
                      .values(pool="changed"))

    # A plain session, as the HTTP export's stream uses.
    with session_factory(engine)() as s:
        lines = iter_lines(s, page=2)
        next(lines)  # the export is now suspended between lines
        writer = threading.Thread(target=write)
        writer.start()
        writer.join(timeout=5)
        done = not writer.is_alive()
        rest = list(lines)  # lets a blocked writer finish before the test ends
        writer.join()
    assert done, "the write waited for the suspended export"
    assert len(rest) == len(tasks) - 1
