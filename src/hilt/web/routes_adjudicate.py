"""The adjudicator's pages: the disagreement queue and a case with every review."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from hilt.access import Principal
from hilt.api.deps import DB, allow
from hilt.errors import InputError
from hilt.review import adjudication
from hilt.review.blind import reviewing_clause
from hilt.review.rubric_spec import RubricSpec
from hilt.store.db import transaction
from hilt.store.tables.review import AdjudicationRow, ReviewTaskRow
from hilt.web.common import engine_of, form_data
from hilt.web.forms import (
    CHOICE_KEYS,
    FormData,
    FormProblem,
    answers_from_form,
    field_reason,
    field_views,
    form_values,
    problem_text,
    rewrite_question,
    unanswered_text,
)
from hilt.web.render import PREFIX, redirect, render

router = APIRouter(prefix=PREFIX, include_in_schema=False)
DECIDERS = ("adjudicator", "lead")
PENDING_PAGE = 200  # disagreements per page
CAUSE_HELP = {
    "guideline_gap": "the rubric does not settle this case (collected for the next version)",
    "ambiguous_input": "the interaction itself can be read more than one way",
    "reviewer_error": "a reviewer misapplied clear guidelines",
    "subjective": "reasonable people differ; no rule would settle it",
}


@router.get("/adjudicate", response_class=HTMLResponse)
def disagreements(request: Request, session: Session = DB,
                  who: Principal = Depends(allow(*DECIDERS)),
                  after: str | None = Query(None)) -> HTMLResponse:
    """One page of the disagreements, most urgent first; the next page starts after the
    last task shown (the keyset cursor ``GET /v1/adjudications`` pages with)."""
    order = adjudication.PENDING_ORDER
    rows, next_after = order.page(adjudication.pending_rows(
        session, limit=PENDING_PAGE + 1, viewer=who.reviewer_id, after=after or None),
        PENDING_PAGE)
    return render(request, "adjudicate_list.html", title="Disagreements",
                  pending=adjudication.pending_views(rows), after=after or None,
                  next_after=next_after, waiting=_waiting(session, who.reviewer_id))


def _waiting(session: Session, viewer: str | None) -> int:
    """How many tasks wait for a decision that ``viewer`` may take (the list's filter:
    not those whose item they are reviewing under another task)."""
    t = ReviewTaskRow
    query = sa.select(sa.func.count()).select_from(t).where(
        t.status == "needs_adjudication")
    if viewer is not None:
        query = query.where(~reviewing_clause(viewer, t.event_id))
    return int(session.execute(query).scalar_one())


def _case_page(request: Request, case: dict[str, Any], *, error: str | None = None,
               values: dict[str, list[str]] | None = None, status_code: int = 200,
               decided: AdjudicationRow | None = None,
               field_errors: dict[str, str] | None = None) -> HTMLResponse:
    spec = RubricSpec.model_validate(case["rubric"]["spec"])
    responses = case["item"]["responses"] or []
    disputed = set(case["reasons"])
    return render(request, "adjudicate_case.html", status_code, title="Adjudicate",
                  case=case, spec=spec, item=case["item"], disputed=disputed,
                  fields=field_views(spec, len(responses), required_ids=disputed),
                  rewrite_q=rewrite_question(spec),
                  causes=[(c, CAUSE_HELP[c], CHOICE_KEYS[i])
                          for i, c in enumerate(adjudication.CAUSES)],
                  values=values or {}, error=error, decided=decided,
                  cause_help=CAUSE_HELP, field_errors=field_errors or {})


def _recorded_decision(session: Session, task_id: str) -> AdjudicationRow | None:
    """The decision already recorded on a task (one per task), if any."""
    return session.execute(sa.select(AdjudicationRow).where(
        AdjudicationRow.task_id == task_id)).scalar_one_or_none()


@router.get("/adjudicate/{task_id}", response_class=HTMLResponse)
def case_page(task_id: str, request: Request, session: Session = DB,
              who: Principal = Depends(allow(*DECIDERS))) -> HTMLResponse:
    case = adjudication.case_file(session, task_id, viewer=who.reviewer_id)
    # a resolved case shows how it was settled, not a form that could only be refused
    decided = _recorded_decision(session, task_id) if case["status"] == "resolved" \
        else None
    return _case_page(request, case, decided=decided)


def _decision_problem(exc: Exception, spec: RubricSpec, unanswered: set[str]) -> str:
    """A refused decision as the page says it, like the review form's errors: the
    adjudication names an answer by its API field (``answers.verdict``), the page by the
    question's prompt, a disputed question left unanswered by the prompts, and the
    cause by the choices the page shows."""
    field = getattr(exc, "field", None)
    if isinstance(exc, InputError) and field == "cause":
        choices = ", ".join(c.replace("_", " ") for c in adjudication.CAUSES)
        return problem_text(InputError(f"pick one of: {choices}", field="cause"), spec)
    if not isinstance(exc, InputError) or not (field or "").startswith("answers."):
        return problem_text(exc, spec)
    question_id = str(field).removeprefix("answers.")
    if question_id in unanswered:
        return unanswered_text([q for q in spec.questions if q.id in unanswered],
                               "the decision must answer this disputed question")
    return problem_text(InputError(exc.reason, field=question_id), spec)


def _decision_fields(exc: Exception, spec: RubricSpec, unanswered: set[str]
                     ) -> dict[str, str]:
    """The reason to show beside each field of the decision form at fault."""
    field, reason = field_reason(exc, spec)
    if field in unanswered:
        return {q: "The decision must answer this disputed question." for q in unanswered}
    if field == "cause":
        return {field: "Pick one of the causes."}
    return {field: reason} if field else {}


@router.post("/adjudicate/{task_id}")
def decide(task_id: str, request: Request, form: FormData = Depends(form_data),
           who: Principal = Depends(allow(*DECIDERS))) -> Response:
    engine = engine_of(request)
    with transaction(engine) as session:
        case = adjudication.case_file(session, task_id, viewer=who.reviewer_id)
    spec = RubricSpec.model_validate(case["rubric"]["spec"])
    n_responses = len(case["item"]["responses"] or [])
    answers: dict[str, Any] = {}
    try:
        # the disputed questions are required, as on the page: an unticked multi-choice
        # is then an answer ("none apply"), not a question left out
        answers = answers_from_form(field_views(spec, n_responses,
                                                required_ids=set(case["reasons"])),
                                    form, n_responses)
        with transaction(engine) as session:
            adjudication.adjudicate(session, task_id, who.reviewer_id or who.actor,
                                    answers=answers,
                                    rationale=(form.get("rationale") or "").strip(),
                                    cause=form.get("cause") or "", token_role=who.role)
    except (InputError, FormProblem) as exc:
        unanswered = set(case["reasons"]) - set(answers)
        return _case_page(request, case, error=_decision_problem(exc, spec, unanswered),
                          values=form_values(form), status_code=422,
                          field_errors=_decision_fields(exc, spec, unanswered))
    return redirect("/adjudicate", "adjudicated")
