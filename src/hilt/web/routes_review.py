"""Sign-in and the reviewer's pages: my queue, the task, submit, skip, heartbeat."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session

from hilt.access import (
    SESSION_LIFETIME,
    Principal,
    TokenExpired,
    authenticate,
    end_session,
    record_use,
    start_session,
)
from hilt.api.deps import DB, allow
from hilt.errors import Forbidden, HiltError, InputError
from hilt.review import queue, views
from hilt.review.eligibility import eligible_work
from hilt.review.reviews import Submission, submit_review
from hilt.review.rubric_spec import RubricSpec
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import ReviewerRow
from hilt.web.common import PEOPLE, engine_of, form_data
from hilt.web.forms import (
    FormData,
    FormProblem,
    answers_from_form,
    field_reason,
    field_views,
    form_values,
    letter,
    optional_float,
    problem_text,
    rewrite_from_form,
    rewrite_question,
    unanswered_text,
)
from hilt.web.render import PREFIX, redirect, render, safe_next
from hilt.web.security import (
    PRESESSION_COOKIE,
    SESSION_COOKIE,
    csrf_matches,
    csrf_token_for,
    is_secure,
    new_presession,
    set_cookie,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)
HISTORY_PAGE = 20  # own reviews per page of My queue
HOME_BY_ROLE = {"reviewer": "/review", "adjudicator": "/adjudicate", "lead": "/lead",
                "admin": "/lead"}


def _reviewer(who: Principal) -> str:
    if who.reviewer_id is None:
        raise Forbidden("this token has no reviewer identity, so it cannot review; "
                        "sign in with a personal token")
    return who.reviewer_id


# --- sign-in ------------------------------------------------------------------------------

def _signin_page(request: Request, *, error: str | None = None, status_code: int = 200,
                 next_path: str | None = None) -> HTMLResponse:
    presession = request.cookies.get(PRESESSION_COOKIE) or new_presession()
    response = render(request, "signin.html", status_code, title="Sign in", error=error,
                      error_lead="Not signed in.",
                      signin_csrf=csrf_token_for(presession),
                      next_path=safe_next(next_path or request.query_params.get("next")))
    set_cookie(response, PRESESSION_COOKIE, presession, secure=is_secure(request))
    return response


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request) -> HTMLResponse:
    return _signin_page(request)


@router.post("/signin")
def signin(request: Request, form: FormData = Depends(form_data)) -> Response:
    next_path = form.get("next")
    if not csrf_matches(request.cookies.get(PRESESSION_COOKIE), form.get("csrf_token")):
        return _signin_page(request, error="The sign-in form expired; please try again.",
                            status_code=403, next_path=next_path)
    secret = (form.get("token") or "").strip()
    try:
        with request.app.state.session_factory() as session:
            principal = authenticate(session, secret) if secret else None
    except TokenExpired as expired:
        when = expired.expired_at.strftime("%Y-%m-%d %H:%M UTC")
        return _signin_page(request, error=f"That token expired on {when}; ask for a "
                                           "new one.", status_code=401,
                            next_path=next_path)
    if principal is None:
        return _signin_page(request, error="That token is not valid (or was revoked).",
                            status_code=401, next_path=next_path)
    home = HOME_BY_ROLE.get(principal.role)
    if home is None:
        return _signin_page(request, error=f"A {principal.role} token has no pages; "
                                           "use it with the API.", status_code=403)
    # The cookie gets a fresh session id, never the token: sign-out can then end it.
    # A session this browser still had is replaced, not left behind.
    with transaction(engine_of(request)) as session:
        previous = request.cookies.get(SESSION_COOKIE)
        if previous:
            end_session(session, previous)
        session_id = start_session(session, principal.token_id)
    record_use(engine_of(request), principal)
    response = redirect(home)
    if safe_next(next_path):
        response.headers["location"] = str(safe_next(next_path))
    lasts = SESSION_LIFETIME.total_seconds()
    if principal.expires_at is not None:  # the session ends with its token
        lasts = min(lasts, (principal.expires_at - utcnow()).total_seconds())
    set_cookie(response, SESSION_COOKIE, session_id, secure=is_secure(request),
               max_age=max(1, int(lasts)))
    response.delete_cookie(PRESESSION_COOKIE, path="/")
    return response


@router.post("/signout")
def signout(request: Request, _: Principal = Depends(allow(
        "admin", "lead", "adjudicator", "reviewer", "service"))) -> Response:
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        with transaction(engine_of(request)) as session:
            end_session(session, session_id)
    response = redirect("/signin", "signed_out")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("")
@router.get("/")
def home(who: Principal = Depends(allow("admin", "lead", "adjudicator", "reviewer",
                                        "service"))) -> Response:
    home_path = HOME_BY_ROLE.get(who.role)
    if home_path is None:
        raise Forbidden(f"a {who.role} token has no pages; use it with the API")
    return redirect(home_path)


# --- the reviewer's queue ------------------------------------------------------------------

@router.get("/review", response_class=HTMLResponse)
def my_queue(request: Request, session: Session = DB,
             who: Principal = Depends(allow(*PEOPLE)),
             after: str | None = Query(None)) -> HTMLResponse:
    """The next-task button and one page of the reviewer's own reviews, newest first;
    the next page starts after the last review shown (the keyset cursor ``GET
    /v1/reviews/mine`` pages with)."""
    rows, next_after = views.HISTORY_ORDER.page(views.history_rows(
        session, _reviewer(who), limit=HISTORY_PAGE + 1, after=after or None),
        HISTORY_PAGE)
    return render(request, "review_home.html", title="My queue",
                  history=[views.history_view(r) for r in rows], after=after or None,
                  next_after=next_after)


@router.post("/review/next")
def next_task(request: Request, who: Principal = Depends(allow(*PEOPLE))) -> Response:
    return _to_next_task(request, _reviewer(who))


def _to_next_task(request: Request, reviewer: str, *, submitted: bool = False) -> Response:
    """Lease the reviewer's next task and open it (``submitted``: after a review, which
    the message says)."""
    with transaction(engine_of(request)) as session:
        claim = queue.claim_next(session, reviewer)
        # an onboarding reviewer sees only gold items: "empty" would hide that open
        # tasks exist but are not theirs yet
        gold_only = claim is None and _eligibility(session, reviewer) == "gold_only"
    if claim is None:
        empty = "onboarding_empty" if gold_only else "empty"
        return redirect("/review", f"submitted_{empty}" if submitted else empty)
    return redirect(f"/review/tasks/{claim.task_id}", "submitted" if submitted else None)


def _eligibility(session: Session, reviewer: str) -> str:
    row = session.get(ReviewerRow, reviewer)
    return "none" if row is None else eligible_work(row.status, active=bool(row.active))


def _task_page(request: Request, view: dict[str, Any], *, error: str | None = None,
               values: dict[str, list[str]] | None = None, status_code: int = 200,
               field_errors: dict[str, str] | None = None) -> HTMLResponse:
    spec = RubricSpec.model_validate(view["rubric"]["spec"])
    responses = view["item"]["responses"]
    rewrite_q = rewrite_question(spec)
    return render(request, "task.html", status_code, title="Review task", view=view,
                  spec=spec, fields=field_views(spec, len(responses)),
                  rewrite_q=rewrite_q, rewrite_original=_first_text(responses),
                  # a rewrite is of the first response (the one the data stage pairs
                  # it with); with several the editor says so
                  rewrite_of=letter(0) if len(responses) > 1 else None,
                  values=values or {}, error=error, item=view["item"],
                  field_errors=field_errors or {})


def _first_text(responses: list[dict[str, Any]]) -> str:
    return str(responses[0].get("text", "")) if responses else ""


@router.get("/review/tasks/{task_id}", response_class=HTMLResponse)
def task_page(task_id: str, request: Request, session: Session = DB,
              who: Principal = Depends(allow(*PEOPLE))) -> HTMLResponse:
    view = views.reviewer_task_view(session, task_id, _reviewer(who))
    if view["lease_status"] != "active":
        return render(request, "task_closed.html", title="Task closed", view=view,
                      sent=False)
    return _task_page(request, view)


# Leases that no submission can follow: the review is in, or the task was cancelled
# (its event erased). An expired or released lease may still take a late review.
FINAL_LEASES = ("submitted", "cancelled")


@router.post("/review/tasks/{task_id}/submit")
def submit(task_id: str, request: Request, form: FormData = Depends(form_data),
           who: Principal = Depends(allow(*PEOPLE))) -> Response:
    reviewer = _reviewer(who)
    engine = engine_of(request)
    with transaction(engine) as session:
        view = views.reviewer_task_view(session, task_id, reviewer)
    if view["lease_status"] in FINAL_LEASES:
        # a form sent again (back button, a second tab): say the task is closed rather
        # than redraw it as open, asking for answers that could never be recorded
        return render(request, "task_closed.html", 409, title="Task closed", view=view,
                      sent=True)
    spec = RubricSpec.model_validate(view["rubric"]["spec"])
    responses = view["item"]["responses"]
    submission = None
    try:
        submission = Submission(
            answers=answers_from_form(field_views(spec, len(responses)), form,
                                      len(responses)),
            confidence=optional_float(form, "confidence"),
            rationale=(form.get("rationale") or "").strip() or None,
            rewrite=rewrite_from_form(form, _first_text(responses)),
            time_spent_s=optional_float(form, "time_spent_s"))
        with transaction(engine) as session:
            submit_review(session, task_id, reviewer, submission)
    except (InputError, FormProblem) as exc:
        message, at_fault = _submit_problem(exc, spec, submission)
        return _task_page(request, view, error=message, values=form_values(form),
                          status_code=422, field_errors=at_fault)
    if form.get("then") == "next":  # the "Submit and next" button
        return _to_next_task(request, reviewer, submitted=True)
    return redirect("/review", "submitted")


def _submit_problem(exc: Exception, spec: RubricSpec, submission: Submission | None
                    ) -> tuple[str, dict[str, str]]:
    """A refused review as the page says it, and the reason to show beside each field at
    fault; a required question left unanswered is named with every other one left
    unanswered, not only the first."""
    field, reason = field_reason(exc, spec)
    if isinstance(exc, InputError) and submission is not None \
            and exc.reason.startswith("required"):
        answered = set(submission.answers) | (
            {q.id for q in spec.questions if q.kind == "rewrite"} if submission.rewrite
            else set())
        missing = [q for q in spec.questions if q.required and q.id not in answered]
        if field in {q.id for q in missing}:
            return (unanswered_text(missing, "this question is required"),
                    {q.id: "This question is required." for q in missing})
    return problem_text(exc, spec), ({field: reason} if field else {})


@router.post("/review/tasks/{task_id}/skip")
def skip(task_id: str, request: Request, who: Principal = Depends(allow(*PEOPLE))
         ) -> Response:
    with transaction(engine_of(request)) as session:
        queue.release(session, task_id, _reviewer(who))
    return redirect("/review", "released")


@router.post("/review/tasks/{task_id}/heartbeat")
def heartbeat(task_id: str, request: Request, who: Principal = Depends(allow(*PEOPLE))
              ) -> JSONResponse:
    try:
        with transaction(engine_of(request)) as session:
            expiry = queue.heartbeat(session, task_id, _reviewer(who))
    except HiltError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=409)
    return JSONResponse({"lease_expires_at": expiry.isoformat()})
