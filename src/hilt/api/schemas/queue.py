"""Response bodies of the reviewer's queue (``/v1/queue/...``, ``/v1/reviews/mine``).

Blind review: nothing here says how many reviews a task has, whether it is a gold item,
its severity or the rule that escalated it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from hilt.api.schemas import Schema, free_form, sometimes
from hilt.events.model import Interaction, Response


class TaskRubric(Schema):
    id: str
    version: int
    spec: dict[str, Any] = free_form("the rubric version's document: questions, options, "
                                     "guidelines, examples (docs/review.md)")


class TaskItem(Schema):
    interaction: Interaction | None = Field(description="null once the event is erased")
    responses: list[Response] = Field(description="the responses to review (empty once "
                                                  "the event is erased)")


class ReviewerTask(Schema):
    """A task as the reviewer who holds (or held) its lease sees it."""

    task_id: str
    assignment_id: str
    lease_status: str = Field(description="the lease: active, released, expired or "
                                          "submitted")
    lease_expires_at: datetime
    rubric: TaskRubric
    item: TaskItem


class NextTask(Schema):
    task: ReviewerTask | None = Field(description="null when the queue has nothing for "
                                                  "the caller")
    resumed: bool = sometimes("with a task: whether it is a lease the caller already held")


class Heartbeat(Schema):
    lease_expires_at: datetime = Field(description="the extended end of the lease")


class Released(Schema):
    status: Literal["released"]


class Submitted(Schema):
    review_id: str
    task_id: str
    late: bool = Field(description="whether the lease had expired when it was submitted")
    next: NextTask = sometimes("with `next=true`: the caller's next task, as POST "
                               "/v1/queue/next answers it")


class OwnReview(Schema):
    review_id: str
    task_id: str
    rubric: str = Field(description="ID@VERSION")
    answers: dict[str, Any] = free_form("question id -> answer, as submitted")
    confidence: float | None
    rationale: str | None
    late: bool
    submitted_at: datetime
