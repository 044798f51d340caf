"""Driving the queue from code: a reviewer (human front end or simulation) works tasks
until the queue is empty, one transaction per claim and per submission."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from hilt.review.adjudication import adjudicate, case_file, pending
from hilt.review.aggregation import Aggregator
from hilt.review.queue import QueueConfig, claim_next
from hilt.review.reviews import Submission, submit_review
from hilt.review.views import reviewer_task_view
from hilt.store.db import transaction

# Gets the reviewer's view of a task (item + rubric) and returns the answers.
AnswerFn = Callable[[dict[str, Any]], Submission]
# Gets an adjudicator's case file and returns (answers, rationale, cause).
DecideFn = Callable[[dict[str, Any]], tuple[dict[str, Any], str, str]]


def work_queue(engine: Engine, reviewer_id: str, answer: AnswerFn, *,
               max_tasks: int | None = None, now: Callable[[], datetime] | None = None,
               config: QueueConfig = QueueConfig(),
               aggregator: Aggregator | None = None) -> int:
    """Claim, answer and submit until nothing is left (or ``max_tasks``); returns the
    number of reviews submitted."""
    done = 0
    while max_tasks is None or done < max_tasks:
        with transaction(engine) as session:
            claim = claim_next(session, reviewer_id, now=now() if now else None,
                               config=config)
            if claim is None:
                return done
            view = reviewer_task_view(session, claim.task_id, reviewer_id)
        submission = answer(view)
        with transaction(engine) as session:
            submit_review(session, claim.task_id, reviewer_id, submission,
                          now=now() if now else None, aggregator=aggregator)
        done += 1
    return done


def work_round_robin(engine: Engine, reviewer_ids: Iterable[str],
                     answer: Callable[[str, dict[str, Any]], Submission], *,
                     config: QueueConfig = QueueConfig(),
                     reorder: Callable[[list[str]], list[str]] | None = None) -> int:
    """Reviewers take turns (one task each per round) until none gets a task, so that
    every task gets k different people; returns the number of reviews.

    Consecutive claims fill one task's panel, so in a fixed order the same reviewers
    always share a panel: six reviewers with panels of three split into two fixed
    triples. ``reorder`` gives each round's order from the reviewers' list (the demo
    draws a random permutation, which puts every reviewer with every other, as a queue
    serving people who arrive at random does); without it the order is the given one."""
    ids = list(reviewer_ids)
    total = 0
    while True:
        progressed = 0
        for rid in reorder(ids) if reorder is not None else ids:
            progressed += work_queue(engine, rid, _bind(answer, rid), max_tasks=1,
                                     config=config)
        total += progressed
        if not progressed:
            return total


def _bind(answer: Callable[[str, dict[str, Any]], Submission], reviewer_id: str
          ) -> AnswerFn:
    return lambda view: answer(reviewer_id, view)


def adjudicate_all(engine: Engine, adjudicator_id: str, decide_fn: DecideFn) -> int:
    """Decide every task waiting for adjudication; returns how many were decided."""
    decided = 0
    while True:
        with transaction(engine) as session:
            waiting = pending(session, limit=1)
            if not waiting:
                return decided
            case = case_file(session, waiting[0]["task_id"])
        answers, rationale, cause = decide_fn(case)
        with transaction(engine) as session:
            adjudicate(session, case["task_id"], adjudicator_id, answers=answers,
                       rationale=rationale, cause=cause)
        decided += 1
