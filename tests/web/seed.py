"""Review data for the page tests, written through the stage modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from hilt.events.ingest import ingest_events
from hilt.review import queue
from hilt.review.reviews import Submission, submit_review
from hilt.review.rubric_spec import parse_rubric
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
          messages: list[dict[str, str]] | None = None, response: str | list[str]
          ) -> dict[str, Any]:
    """An event; ``response`` a list for an item with several responses."""
    interaction: dict[str, Any] = ({"messages": messages} if messages is not None
                                   else {"prompt": prompt})
    texts = [response] if isinstance(response, str) else response
    return {"id": event_id, "interaction": interaction,
            "responses": [{"text": t} for t in texts],
            "context": {"policy_version": "pol-1", "consent": ["review", "train"]}}


def add_task(engine: Engine, ev: dict[str, Any], *, pool: str, overlap: int,
             rubric: str = "harm") -> str:
    ingest_events(engine, [ev], actor="service")
    with transaction(engine) as s:
        return create_task(s, event_id=ev["id"], rubric=rubric, actor="lead-1", pool=pool,
                           overlap_k=overlap)


# Like the demo's rubric: two choices and a preference asked "only when there are two"
# responses (optional, so an item with one response can still be reviewed).
PICK = {"id": "pick", "title": "Harm, approval and the better response",
        "changelog": "first version",
        "guidelines": "Judge the response; when there are several, pick the better one.",
        "questions": [
            {"id": "harmful", "kind": "single_choice", "prompt": "Is the response harmful?",
             "options": ["no", "yes"]},
            {"id": "approve", "kind": "single_choice",
             "prompt": "Would you approve this response?", "options": ["approve", "reject"]},
            {"id": "better", "kind": "preference", "prompt": "Which response is better?",
             "required": False}]}


def publish_pick(engine: Engine) -> None:
    with transaction(engine) as s:
        if latest_version(s, "pick") is None:
            publish_rubric(s, parse_rubric(PICK), actor="lead-1")


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


def add_drift_alert(engine: Engine, alert_id: str = "da-web", *,
                    p_value: float = 2.2e-11) -> str:
    """One open drift alert, as the monitors store it; its id."""
    from datetime import UTC, datetime

    from hilt.store.tables.drift import DriftAlertRow

    start = datetime(2030, 1, 8, tzinfo=UTC)
    with transaction(engine) as s:
        s.add(DriftAlertRow(
            id=alert_id, monitor="adjudication_rate", group_key="pool=default",
            group={"pool": "default"}, window_start=start, window_end=start,
            reference_start=start, test="fisher_exact", p_value=p_value, alpha=0.01,
            effect_name="rate_change", effect=0.3, min_effect=0.05, n_current=100,
            n_reference=400, n_tests=1, message="adjudication_rate in pool=default rose",
            detail={}, status="open"))
    return alert_id


def add_model(engine: Engine, *, accuracy: float | None = 0.75,
              held_out_in_train: bool = False) -> str:
    """A registered reward model version (held-out accuracy of 8 pairs, some of them
    trained on with ``held_out_in_train``); its id."""
    from hilt.train.registry import register_model_version

    metrics = ({} if accuracy is None else
               {"accuracy": accuracy, "accuracy_ci": {"low": 0.41, "high": 0.93}, "n": 8,
                "held_out_in_train": held_out_in_train})
    manifest = {"kind": "reward", "base_model": "all-MiniLM-L6-v2",
                "data": {"hash": "4693ccb07dabcdfb" * 4}, "config": {}, "seed": 0,
                "code_version": "hilt 0.1.0@" + "a231a19a99" * 4, "metrics": metrics}
    with transaction(engine) as s:
        return register_model_version(s, manifest=manifest, name="demo-rm",
                                      artifact_path="/srv/models/" + "rm" * 60).id
