"""Operations API: Prometheus metrics, background jobs, webhooks, review exports.

``/metrics`` needs a token like everything else (Prometheus sends it with
``authorization: {credentials: …}`` / ``bearer_token_file``); service, lead and admin
tokens may scrape.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import Field
from sqlalchemy.orm import Session

from hilt.access import Principal
from hilt.api.bodies import RequestBody
from hilt.api.deps import DB, allow
from hilt.api.paging import PAGED, after_query, one_page
from hilt.api.schemas import declared
from hilt.api.schemas.ops import (
    Delivery,
    EventTypes,
    Job,
    JobQueued,
    Pruned,
    Subscribed,
    Subscription,
    Unsubscribed,
)
from hilt.errors import InputError
from hilt.ops.jobs import STATUSES as JOB_STATUSES
from hilt.ops.webhooks import DELIVERY_STATUSES, SECRET_LENGTH
from hilt.store.tables.review import TASK_STATUSES

router = APIRouter(tags=["ops"])
OPERATORS = ("lead", "service")


class NDJSONResponse(StreamingResponse):
    """A stream of JSON lines: declared as such in the OpenAPI schema, not as JSON."""

    media_type = "application/x-ndjson"


@router.get("/metrics", response_class=Response)
def metrics(request: Request, _: Principal = Depends(allow("service", "lead"))) -> Response:
    from hilt.ops.metrics import CONTENT_TYPE, render

    return Response(render(request.app.state.engine), media_type=CONTENT_TYPE)


# --- jobs -------------------------------------------------------------------------


class JobIn(RequestBody):
    kind: str = Field(description="export.reviews, train.reward, eval.reward, "
                                  "train.classifier or eval.check")
    params: dict[str, Any] = Field(default_factory=dict)


@router.post("/v1/jobs", status_code=202, responses=declared(JobQueued, 202))
def start_job(body: JobIn, session: Session = DB,
              who: Principal = Depends(allow(*OPERATORS))) -> dict[str, Any]:
    """Queue a job; poll ``GET /v1/jobs/{id}`` for its progress.

    An ``export.reviews`` job is refused (403) to a caller who is reviewing an item it
    would export, as ``GET /v1/exports/reviews.jsonl`` is (:mod:`hilt.review.blind`):
    its file holds the same lines, and whoever started it can read them."""
    from hilt.ops.commands import CONTRACTS, build_argv
    from hilt.ops.jobs import enqueue, kinds
    from hilt.review.blind import refuse_if_reviewing_any

    spec = kinds().get(body.kind)
    if spec is None or not spec.user_startable:
        startable = sorted(k for k, v in kinds().items() if v.user_startable)
        raise InputError(f"jobs that can be started: {startable}", field="kind")
    if body.kind in CONTRACTS:
        build_argv(body.kind, body.params)  # reject bad parameters now, not in the worker
    if spec.shows_items is not None:
        # Checked when the job starts: its worker has no caller to refuse.
        refuse_if_reviewing_any(session, who.reviewer_id, spec.shows_items(body.params),
                                "this export")
    job_id = enqueue(session, body.kind, body.params, actor=who.actor)
    return {"job_id": job_id, "status": "queued"}


@router.get("/v1/jobs", responses=declared(list[Job], 200, PAGED))
def list_jobs(request: Request, response: Response,
              status: str | None = Query(None, description="one of "
                                         + ", ".join(JOB_STATUSES)),
              kind: str | None = Query(None, description="a job kind, e.g. train.reward"),
              limit: int = Query(50, ge=1, le=500), after: str | None = after_query(),
              session: Session = DB,
              _: Principal = Depends(allow(*OPERATORS))) -> list[dict[str, Any]]:
    """Jobs, newest first (those queued at the same instant by id), ``limit`` a page.
    When more follow, the ``X-Next-After`` header holds the cursor to pass as ``after``
    for the next page and ``Link`` (``rel="next"``) that page's URL, the filters kept;
    neither is there on the last page. A cursor hilt did not give is a 422 naming
    ``after``.

    A ``status`` or ``kind`` no job can have is refused (422 naming it and listing the
    valid ones) rather than listing nothing."""
    from hilt.ops import job_views

    if kind is not None:
        job_views.check_kind_filter(session, kind)
    rows = job_views.list_jobs(session, status=status, kind=kind, limit=limit + 1,
                               after=after)
    return [job_views.job_view(r) for r in one_page(rows, limit, job_views.JOB_ORDER,
                                                    request, response)]


@router.get("/v1/jobs/{job_id}", responses=declared(Job))
def show_job(job_id: str, session: Session = DB,
             _: Principal = Depends(allow(*OPERATORS))) -> dict[str, Any]:
    from hilt.ops import jobs
    from hilt.ops.job_views import job_view

    return job_view(jobs.get_job(session, job_id))


@router.post("/v1/jobs/{job_id}/cancel", responses=declared(Job))
def cancel_job(job_id: str, session: Session = DB,
               who: Principal = Depends(allow(*OPERATORS))) -> dict[str, Any]:
    """Cancel a queued job now, or ask a running long job (training, evaluation) to stop
    at its next progress report; 409 for a running short job, which cannot be
    interrupted."""
    from hilt.ops import jobs
    from hilt.ops.job_views import job_view

    return job_view(jobs.cancel(session, job_id, actor=who.actor))


@router.post("/v1/jobs/{job_id}/retry", responses=declared(Job))
def retry_job(job_id: str, session: Session = DB,
              who: Principal = Depends(allow(*OPERATORS))) -> dict[str, Any]:
    """Queue a failed or cancelled job again, as the same job (its id, parameters and
    workers kept, its kind's number of attempts given anew; audited as ``job.requeue``);
    409 for a job in any other status, as ``hilt jobs retry``.

    A job whose output shows reviews (``export.reviews``) is refused (403) to a caller
    who is reviewing an item it would show, as starting it is: a retry runs it again."""
    from hilt.ops import jobs
    from hilt.ops.job_views import job_view
    from hilt.review.blind import refuse_if_reviewing_any

    row = jobs.get_job(session, job_id)  # 404 for a job that does not exist
    spec = jobs.kinds().get(row.kind)
    if spec is not None and spec.shows_items is not None:
        refuse_if_reviewing_any(session, who.reviewer_id, spec.shows_items(row.params),
                                "this export")
    return job_view(jobs.retry(session, job_id, actor=who.actor))


class PruneIn(RequestBody):
    older_than: str = Field(description="delete what finished longer ago than this: "
                                        "30d, 12h, 90m, 45s or 2w (as hilt jobs prune "
                                        "--older-than)")


@router.post("/v1/jobs/prune", responses=declared(Pruned))
def prune_jobs(body: PruneIn, session: Session = DB,
               who: Principal = Depends(allow(*OPERATORS))) -> dict[str, Any]:
    """Delete the jobs that finished (succeeded, failed, cancelled) longer ago than
    ``older_than`` and the webhook deliveries delivered longer ago; queued and running
    jobs and pending or failed deliveries stay. One audit entry (``ops.prune``) records
    the counts, which are returned. A duration hilt cannot read is a 422 naming
    ``older_than``."""
    from hilt.ops.jobs import prune_older_than

    return prune_older_than(session, body.older_than, actor=who.actor)


# --- webhooks ---------------------------------------------------------------------


class SubscriptionIn(RequestBody):
    url: str
    event_types: list[str] = Field(min_length=1)
    secret: str | None = Field(default=None, min_length=SECRET_LENGTH[0],
                               max_length=SECRET_LENGTH[1])
    description: str = ""


@router.post("/v1/webhooks", status_code=201, responses=declared(Subscribed, 201))
def subscribe(body: SubscriptionIn, session: Session = DB,
              who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    """Subscribe a URL; the signing secret is returned once, here."""
    from hilt.ops.webhooks import subscribe as add

    sub_id, secret = add(session, url=body.url, event_types=body.event_types,
                         actor=who.actor, secret=body.secret, description=body.description)
    return {"id": sub_id, "secret": secret}


@router.get("/v1/webhooks", responses=declared(list[Subscription]))
def subscriptions(session: Session = DB,
                  _: Principal = Depends(allow("lead"))) -> list[dict[str, Any]]:
    from hilt.ops.webhooks import list_subscriptions

    return list_subscriptions(session)


@router.get("/v1/webhooks/event-types", responses=declared(EventTypes))
def event_types(_: Principal = Depends(allow("lead", "service"))) -> dict[str, list[str]]:
    from hilt.ops.webhooks import EVENT_TYPES

    return {k: list(v) for k, v in EVENT_TYPES.items()}


@router.delete("/v1/webhooks/{sub_id}", responses=declared(Unsubscribed))
def unsubscribe(sub_id: str, session: Session = DB,
                who: Principal = Depends(allow("lead"))) -> dict[str, str]:
    from hilt.ops.webhooks import unsubscribe as remove

    remove(session, sub_id, actor=who.actor)
    return {"id": sub_id, "status": "inactive"}


@router.get("/v1/webhooks/deliveries", responses=declared(list[Delivery], 200, PAGED))
def deliveries(request: Request, response: Response, subscription_id: str | None = None,
               status: str | None = Query(None, description="one of "
                                          + ", ".join(DELIVERY_STATUSES)),
               limit: int = Query(100, ge=1, le=1000), after: str | None = after_query(),
               session: Session = DB,
               _: Principal = Depends(allow("lead"))) -> list[dict[str, Any]]:
    """The delivery log, newest audit entries first (one entry's deliveries by id),
    ``limit`` a page. When more follow, the ``X-Next-After`` header holds the cursor to
    pass as ``after`` for the next page and ``Link`` (``rel="next"``) that page's URL,
    the filters kept; neither is there on the last page. A cursor hilt did not give is
    a 422 naming ``after``."""
    from hilt.ops.webhooks import DELIVERY_ORDER, delivery_view, list_deliveries

    rows = list_deliveries(session, subscription_id=subscription_id, status=status,
                           limit=limit + 1, after=after)
    return [delivery_view(r) for r in one_page(rows, limit, DELIVERY_ORDER, request,
                                               response)]


@router.post("/v1/webhooks/deliveries/{delivery_id}/replay", responses=declared(Delivery))
def replay(delivery_id: str, session: Session = DB,
           who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    from hilt.ops.webhooks import delivery_view
    from hilt.ops.webhooks import replay as send_again

    return delivery_view(send_again(session, delivery_id, actor=who.actor))


# --- exports ----------------------------------------------------------------------

@router.get("/v1/exports/reviews.jsonl", response_class=NDJSONResponse, responses={
    200: {"description": "one JSON object per task, one per line",
          "content": {NDJSONResponse.media_type: {"schema": {"type": "string"}}}}})
def export_reviews(request: Request,
                   status: str | None = Query(None, description="only tasks with this "
                                              "status: " + ", ".join(TASK_STATUSES)),
                   session: Session = DB,
                   who: Principal = Depends(allow(*OPERATORS))) -> NDJSONResponse:
    """Every task with its item, reviews and final labels, streamed as JSON lines.

    Refused (403, naming how many) to a caller who is reviewing an item the export
    holds (:mod:`hilt.review.blind`): the lines have no place to say that some were
    left out, and an export that data is built from must not lose rows unnoticed."""
    from hilt.ops.export import check_status, exported_events, iter_jsonl
    from hilt.review.blind import refuse_if_reviewing_any

    # Both before the stream starts: its status line is already sent.
    check_status(status)
    refuse_if_reviewing_any(session, who.reviewer_id, exported_events(status),
                            "this export")

    def stream() -> Any:
        # Its own read-only session: the response outlives the request's dependencies.
        with request.app.state.session_factory() as session:
            yield from iter_jsonl(session, status=status)

    return NDJSONResponse(stream())
