"""Review data for the page tests, written through the stage modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from hilt.events.ingest import ingest_events
from hilt.review import queue
from hilt.review.reviews import Submission, submit_review
from hilt.review.rubrics import latest_version, load_rubric_file, publish_rubric
from hilt.review.tasks import create_task
from hilt.store.db import transaction

HARM = Path(__file__).resolve().parents[2] / "examples" / "rubrics" / "harm.yaml"

XSS_RESPONSE = (
    "Sure! Here is **bold** advice.\n\n"
    "<script>window.__pwned = 1; alert('script')</script>\n"
    '<img src="x" onerror="window.__pwned = 2; alert(\'onerror\')">\n'
    "[click me](javascript:alert('link'))\n"
    '<a href="javascript:alert(\'anchor\')">anchor</a>\n'
    "![tracker](http://203.0.113.9/pixel.png)\n\n"
    "```html\n<script>alert('in code')</script>\n```\n")


def publish_harm(engine: Engine) -> None:
    with transaction(engine) as s:
        if latest_version(s, "harm") is None:
            publish_rubric(s, load_rubric_file(HARM), actor="lead-1")


def event(event_id: str, *, prompt: str | None = None,
          messages: list[dict[str, str]] | None = None, response: str) -> dict[str, Any]:
    interaction: dict[str, Any] = ({"messages": messages} if messages is not None
                                   else {"prompt": prompt})
    return {"id": event_id, "interaction": interaction, "responses": [{"text": response}],
            "context": {"policy_version": "pol-1", "consent": ["review", "train"]}}


def add_task(engine: Engine, ev: dict[str, Any], *, pool: str, overlap: int) -> str:
    ingest_events(engine, [ev], actor="service")
    with transaction(engine) as s:
        return create_task(s, event_id=ev["id"], rubric="harm", actor="lead-1", pool=pool,
                           overlap_k=overlap)


def review(engine: Engine, reviewer_id: str, answers: dict[str, Any], *,
           rationale: str | None = None, rewrite: str | None = None) -> str:
    """Claim the reviewer's next task and submit ``answers``; returns the task id."""
    with transaction(engine) as s:
        claim = queue.claim_next(s, reviewer_id)
        assert claim is not None
    with transaction(engine) as s:
        submit_review(s, claim.task_id, reviewer_id, Submission(
            answers=answers, rationale=rationale, rewrite=rewrite))
    return claim.task_id
