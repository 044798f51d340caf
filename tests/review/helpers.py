"""Shared set-up for the review tests: rubrics, reviewers, events."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from hilt.access import add_reviewer
from hilt.events.ingest import ingest_events
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HARM = EXAMPLES / "rubrics" / "harm.yaml"
PAIRWISE = EXAMPLES / "rubrics" / "pairwise.yaml"
SAFETY_RULES = EXAMPLES / "rules" / "safety.yaml"

SIMPLE_RUBRIC: dict[str, Any] = {
    "id": "simple", "title": "Simple", "questions": [
        {"id": "verdict", "kind": "single_choice", "prompt": "ok?",
         "options": ["safe", "harmful", "borderline"]},
        {"id": "note", "kind": "free_text", "prompt": "note", "required": False}]}


def publish_examples(engine: Engine) -> None:
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")
        publish_rubric(s, load_rubric_file(PAIRWISE), actor="lead")


def add_reviewers(engine: Engine, ids: list[str], *, status: str = "calibrated",
                  role: str = "reviewer", pools: list[str] | None = None,
                  skills: list[str] | None = None) -> None:
    with transaction(engine) as s:
        for rid in ids:
            add_reviewer(s, reviewer_id=rid, role=role, pools=pools, skills=skills)
            s.flush()
            row = s.get(ReviewerRow, rid)
            assert row is not None
            row.status = status


def event(i: int, prompt: str | None = None, *, scores: dict[str, float] | None = None,
          responses: int = 1, flag: bool = False, response: str | None = None
          ) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "id": f"ev{i:05d}",
        "interaction": {"prompt": prompt or f"question number {i} about topic {i * 7919}"},
        "responses": [{"text": response or f"answer {j} to {i}"} for j in range(responses)],
        "scores": scores or {}, "context": {"policy_version": "pol-1", "consent": ["review"]},
    }
    if flag:
        ev["feedback"] = [{"kind": "flag", "reason": "bad", "category": "harm"}]
    return ev


def ingest(engine: Engine, events: list[dict[str, Any]]) -> int:
    return ingest_events(engine, events, actor="service").escalated


def race_with_forget(engine: Engine, name: str, call: Callable[[], Any], subject: str,
                     delay: float) -> dict[str, Any]:
    """Run ``call`` and ``hilt forget SUBJECT`` in two threads released together: the
    call ``delay`` seconds after the barrier, or the forget ``-delay`` seconds after it
    when ``delay`` is negative. The results (or exceptions) under ``name`` and
    ``"forget"``."""
    from hilt.data.forget import forget

    start = threading.Barrier(2)
    out: dict[str, Any] = {}

    def run(key: str, work: Callable[[], Any], wait: float) -> None:
        try:
            start.wait()
            time.sleep(wait)
            out[key] = work()
        except BaseException as exc:  # looked at in the main thread
            out[key] = exc

    threads = [threading.Thread(target=run, args=(name, call, max(delay, 0.0))),
               threading.Thread(target=run, args=("forget", lambda: forget(
                   engine, subject, actor="dpo"), max(-delay, 0.0)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def one_event_per_subject(engine: Engine, n: int) -> None:
    """Events ev00000… of subjects bob-0…, and reviewers r0… to review them."""
    events = []
    for i in range(n):
        ev = event(i)
        ev["context"]["subject_id"] = f"bob-{i}"
        events.append(ev)
    ingest(engine, events)
    add_reviewers(engine, [f"r{i}" for i in range(n)])


def spy_fast_resolutions(monkeypatch: Any) -> list[str | None]:
    """What each call of PostgreSQL's one-statement resolution returned, in order (the
    list stays empty where the general path resolved every task)."""
    from hilt.review import work

    returned: list[str | None] = []
    original = work.pg_resolve.resolve

    def spy(*args: Any, **kwargs: Any) -> str | None:
        returned.append(original(*args, **kwargs))
        return returned[-1]

    monkeypatch.setattr(work.pg_resolve, "resolve", spy)
    return returned


def final_labels(engine: Engine, task_id: str) -> dict[str, tuple[Any, str, float, int]]:
    """A task's final labels by question: value, provenance, confidence (to 9 places)
    and how many reviews it rests on."""
    import sqlalchemy as sa

    from hilt.store.tables.review import FinalLabelRow

    with transaction(engine) as s:
        rows = s.execute(sa.select(FinalLabelRow).where(FinalLabelRow.task_id == task_id)
                         ).scalars().all()
        return {r.question_id: (r.value, r.provenance, round(r.confidence, 9),
                                len(r.review_ids)) for r in rows}
