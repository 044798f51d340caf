"""A person setting a reviewer back to onboarding is told when too few gold items are left
for that reviewer to pass a calibration set (the queue serves no task twice, and only
gold answers from the decision on count): the CLI on stderr, the API as ``note``."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import add_reviewer
from hilt.cli import app
from hilt.quality.store import set_reviewer_status, status_note
from hilt.review.queue import QueueConfig, claim_next
from hilt.review.reviews import Submission
from hilt.review.workflow import work_queue
from hilt.store.db import transaction

from .helpers import CLASSES, setup_operation

NO_GOLD = QueueConfig(gold_rate=0.0)


def _answered_all_gold(engine: Engine) -> None:
    op = setup_operation(engine, n_tasks=2, n_gold=10, pool=(), status="onboarding")
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="rev", actor="lead")

    def right(view: dict[str, Any]) -> Submission:
        return Submission(answers={"verdict": CLASSES[op.truth[op.event_of(view["task_id"])]]})

    assert work_queue(engine, "rev", right, config=NO_GOLD) == 10


def test_onboarding_with_every_gold_item_answered_says_they_get_no_work(
        engine: Engine) -> None:
    _answered_all_gold(engine)
    with transaction(engine) as s:
        set_reviewer_status(s, "rev", "onboarding", actor="lead", reason="redo")
        note = status_note(s, "rev", "onboarding")
        assert claim_next(s, "rev", config=NO_GOLD) is None  # what the note warns of
    assert note is not None
    assert note.startswith("rev has 0 gold item(s) left to answer and a calibration set "
                           "holds 10, so as onboarding they cannot pass one and get no work")
    with transaction(engine) as s:
        assert status_note(s, "rev", "calibrated") is None


def test_the_cli_says_so_on_stderr(engine: Engine, db_url: str) -> None:
    _answered_all_gold(engine)
    result = CliRunner().invoke(app, ["quality", "set-status", "rev", "onboarding",
                                      "--reason", "redo", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "note: rev has 0 gold item(s) left to answer" in result.stderr
    assert '"status": "onboarding"' in result.stdout


def test_a_new_reviewer_with_the_gold_set_ahead_gets_no_note(engine: Engine) -> None:
    setup_operation(engine, n_tasks=2, n_gold=10, pool=(), status="onboarding")
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="fresh", actor="lead")
        set_reviewer_status(s, "fresh", "onboarding", actor="lead", reason="new")
        assert status_note(s, "fresh", "onboarding") is None
