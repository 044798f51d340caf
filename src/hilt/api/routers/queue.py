"""The reviewer's queue: next task, heartbeat, release, submit (optionally with the next
task), and their own reviews.

Its own router, included first: these are the requests a review team sends all day, and
routes are matched in order.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hilt.access import Principal
from hilt.api.bodies import RequestBody
from hilt.api.deps import DB, allow
from hilt.api.paging import PAGED, after_query, one_page
from hilt.api.routers.review import PEOPLE, reviewer_of
from hilt.api.schemas import declared
from hilt.api.schemas.queue import (
    Heartbeat,
    NextTask,
    OwnReview,
    Released,
    ReviewerTask,
    Submitted,
)
from hilt.review import queue, views, work
from hilt.review.reviews import Submission

router = APIRouter(prefix="/v1", tags=["review"])


class SubmissionIn(RequestBody):
    answers: dict[str, Any]
    confidence: float | None = Field(default=None, ge=0, le=1)
    rationale: str | None = None
    rewrite: str | None = None
    time_spent_s: float | None = Field(default=None, ge=0)


@router.post("/queue/next", responses=declared(NextTask))
async def next_task(request: Request,
                    who: Principal = Depends(allow(*PEOPLE))) -> JSONResponse:
    """Lease the next task; ``{"task": null}`` when the queue is empty for you."""
    reviewer = reviewer_of(who)
    found = await run_in_threadpool(work.next_task, request.app.state.engine, reviewer,
                                    with_view=True)
    if found is None:
        return JSONResponse({"task": None})
    # The view is JSON already (strings, numbers, the stored item and rubric): rendered
    # as it is, without FastAPI's recursive jsonable_encoder pass over the rubric and the
    # item, which cost about a tenth of the request.
    return JSONResponse({"task": found.view, "resumed": found.claim.resumed})


@router.get("/queue/tasks/{task_id}", responses=declared(ReviewerTask))
def my_task(task_id: str, session: Session = DB,
            who: Principal = Depends(allow(*PEOPLE))) -> dict[str, Any]:
    return views.reviewer_task_view(session, task_id, reviewer_of(who))


@router.post("/queue/tasks/{task_id}/heartbeat", responses=declared(Heartbeat))
def heartbeat(task_id: str, session: Session = DB,
              who: Principal = Depends(allow(*PEOPLE))) -> dict[str, str]:
    expiry = queue.heartbeat(session, task_id, reviewer_of(who))
    return {"lease_expires_at": expiry.isoformat()}


@router.post("/queue/tasks/{task_id}/release", responses=declared(Released))
def release(task_id: str, session: Session = DB,
            who: Principal = Depends(allow(*PEOPLE))) -> dict[str, str]:
    queue.release(session, task_id, reviewer_of(who))
    return {"status": "released"}


@router.post("/queue/tasks/{task_id}/submit", responses=declared(Submitted))
async def submit(task_id: str, body: SubmissionIn, request: Request,
                 and_next: bool = Query(False, alias="next",
                                        description="also lease your next task (as POST "
                                        "/v1/queue/next) and return it as 'next'"),
                 who: Principal = Depends(allow(*PEOPLE))) -> JSONResponse:
    submission = Submission(answers=body.answers, confidence=body.confidence,
                            rationale=body.rationale, rewrite=body.rewrite,
                            time_spent_s=body.time_spent_s)
    engine, reviewer = request.app.state.engine, reviewer_of(who)
    if and_next:
        result, found = await run_in_threadpool(work.submit_and_next, engine, task_id,
                                                reviewer, submission, with_view=True)
    else:
        result = await run_in_threadpool(work.submit, engine, task_id, reviewer, submission)
    out: dict[str, Any] = result.as_dict()
    out.pop("task_status")  # blind review: whether others have answered is not shown
    if and_next:  # the view is JSON already (see next_task)
        out["next"] = ({"task": None} if found is None else
                       {"task": found.view, "resumed": found.claim.resumed})
    return JSONResponse(out)


@router.get("/reviews/mine", responses=declared(list[OwnReview], 200, PAGED))
def my_reviews(request: Request, response: Response, limit: int = Query(50, ge=1, le=500),
               after: str | None = after_query(), session: Session = DB,
               who: Principal = Depends(allow(*PEOPLE))) -> list[dict[str, Any]]:
    """The caller's own submitted reviews, newest first (those submitted at the same
    instant by id), ``limit`` a page. When more follow, the ``X-Next-After`` header
    holds the cursor to pass as ``after`` for the next page and ``Link``
    (``rel="next"``) that page's URL; neither is there on the last page. A cursor hilt
    did not give is a 422 naming ``after``."""
    rows = views.history_rows(session, reviewer_of(who), limit=limit + 1, after=after)
    return [views.history_view(r) for r in one_page(rows, limit, views.HISTORY_ORDER,
                                                    request, response)]


