"""Review API: rubrics, escalation rules, the reviewer queue, adjudication and labels.

Who may do what: leads publish rubrics and rules and see everything; reviewers see only
the tasks they hold and their own reviews (blind review); adjudicators see whole cases
and decide; service tokens may read final labels but never review. Whoever is reviewing
an item under one task (a re-review, a gold item) reads nothing of its other tasks'
reviews, decisions and labels here until they have submitted (:mod:`hilt.review.blind`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import Field, StrictFloat, StrictInt
from sqlalchemy.orm import Session

from hilt.access import Principal, set_reviewer_active
from hilt.api.bodies import RequestBody
from hilt.api.deps import DB, allow
from hilt.api.paging import PAGED, after_query, one_page
from hilt.api.schemas import declared
from hilt.api.schemas.review import (
    AdjudicationDecided,
    Backtest,
    CaseFile,
    GoldCarry,
    GuidelineProposal,
    LabelPage,
    PendingAdjudication,
    PublishedRubric,
    PublishedRuleSet,
    QueueStats,
    ReviewerActivation,
    RubricDiff,
    RubricSummary,
    RubricVersion,
    RuleSetActivation,
    TaskCreated,
    TaskRecord,
    TriageRun,
)
from hilt.errors import Forbidden, InputError
from hilt.review import adjudication, blind, escalation, gold, rubrics, tasks, views
from hilt.review.gold_carry import carry_gold
from hilt.review.labels import iter_final_labels
from hilt.review.records import PROVENANCE_KINDS
from hilt.review.rubric_spec import parse_rubric
from hilt.review.rules import MAX_OVERLAP, MAX_SLA_HOURS, parse_rule_set
from hilt.review.text_checks import NAME_MAX
from hilt.review.triage import TriageConfig, run_triage
from hilt.store.tables.base import utcnow

router = APIRouter(prefix="/v1", tags=["review"])
VERSION = Path(ge=0, le=2**31 - 1)

PEOPLE = ("reviewer", "adjudicator", "lead")
# How many entries a list answer left out for blind review (its body is a plain list).
WITHHELD_HEADER = "X-Hilt-Withheld"


def reviewer_of(who: Principal) -> str:
    if who.reviewer_id is None:
        raise Forbidden("this token has no reviewer identity")
    return who.reviewer_id


# --- rubrics ---------------------------------------------------------------------------

@router.post("/rubrics", responses=declared(PublishedRubric))
def publish_rubric(spec: dict[str, Any], session: Session = DB,
                   who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    """Publish a rubric (the YAML document as JSON) as its next immutable version.
    ``gold`` (present when there are any) counts the rubric's gold items pinned to
    earlier versions, which need answering again under this one."""
    row = rubrics.publish_rubric(session, parse_rubric(spec, file="request"),
                                 actor=who.actor)
    return {"id": row.rubric_id, "version": row.version, "content_hash": row.content_hash,
            **gold.publish_notice(session, row.rubric_id, row.version)}


@router.get("/rubrics", responses=declared(list[RubricSummary]))
def list_rubrics(session: Session = DB,
                 _: Principal = Depends(allow(*PEOPLE))) -> list[dict[str, Any]]:
    return rubrics.list_rubrics(session)


@router.get("/rubrics/diff", responses=declared(RubricDiff))
def diff_rubrics(a: str, b: str, session: Session = DB,
                 _: Principal = Depends(allow("lead", "adjudicator"))) -> dict[str, Any]:
    return rubrics.diff_refs(session, a, b)


@router.get("/rubrics/{rubric_id}/proposals", responses=declared(list[GuidelineProposal]))
def rubric_proposals(rubric_id: str, response: Response, session: Session = DB,
                     who: Principal = Depends(allow("lead", "adjudicator"))
                     ) -> list[dict[str, Any]]:
    """Guideline-gap adjudications: proposals for the next version, without those of
    items the caller is reviewing under another task (blind review); how many were
    left out is in the ``X-Hilt-Withheld`` header (the body stays a plain list). An
    unpublished rubric id is a 404, so that a misspelt one does not read as "no
    proposals"."""
    rubrics.get_version(session, rubric_id)
    proposals = rubrics.guideline_proposals(session, rubric_id)
    hidden = blind.events_under_review(session, who.reviewer_id,
                                       (p["event_id"] for p in proposals))
    shown = [p for p in proposals if p["event_id"] not in hidden]
    response.headers[WITHHELD_HEADER] = str(len(proposals) - len(shown))
    return shown


@router.get("/rubrics/{rubric_id}/{version}", responses=declared(RubricVersion))
def get_rubric(rubric_id: str, version: int = VERSION, session: Session = DB,
               _: Principal = Depends(allow(*PEOPLE))) -> dict[str, Any]:
    row = rubrics.get_version(session, rubric_id, version)
    return {"id": row.rubric_id, "version": row.version, "changelog": row.changelog,
            "content_hash": row.content_hash, "spec": row.spec}


# --- escalation ------------------------------------------------------------------------


class RuleSetIn(RequestBody):
    spec: dict[str, Any] = Field(description="the rule-set YAML document as JSON")
    activate: bool = True


@router.post("/escalation/rule-sets", responses=declared(PublishedRuleSet))
def publish_rules(body: RuleSetIn, session: Session = DB,
                  who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    row = escalation.publish_rule_set(session, parse_rule_set(body.spec, file="request"),
                                      actor=who.actor, activate=body.activate)
    return {"id": row.rule_set_id, "version": row.version, "active": body.activate}


@router.post("/escalation/rule-sets/{rule_set_id}/{version}/activate",
             responses=declared(RuleSetActivation))
def activate_rules(rule_set_id: str, version: int = VERSION,
                   session: Session = DB,
                   who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    before = escalation.activate_rule_set(session, rule_set_id, version, actor=who.actor)
    return {"id": rule_set_id, "version": version, "active": bool(version),
            "previously_active": before}


@router.post("/escalation/backtest", responses=declared(Backtest))
def backtest_rules(body: RuleSetIn,
                   version: int | None = Query(None, ge=0, le=2**31 - 1,
                                               description="the version whose audit sample "
                                               "to draw (default: the published version "
                                               "with the same content, else 0, with a "
                                               "note)"),
                   session: Session = DB,
                   _: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    """How many stored events each rule would escalate (creates nothing), as
    ``hilt escalation backtest`` answers it."""
    return escalation.backtest(session, parse_rule_set(body.spec, file="request"),
                               version=version)


# --- tasks (leads) ----------------------------------------------------------------------


class TaskIn(RequestBody):
    event_id: str
    rubric: str = Field(description="ID or ID@VERSION")
    severity: str = "sev2"
    # Non-blank and free of control characters too (checked by tasks.create_task): a task
    # in a pool or needing a skill no reviewer profile can name is never claimed.
    pool: str = Field(default="default", min_length=1, max_length=NAME_MAX)
    overlap: int = Field(default=3, ge=1, le=MAX_OVERLAP)
    sla_hours: float | None = Field(default=None, gt=0, le=MAX_SLA_HOURS)
    skills: list[Annotated[str, Field(min_length=1, max_length=NAME_MAX)]] = Field(
        default_factory=list, max_length=50)


class GoldIn(RequestBody):
    event_id: str
    rubric: str
    answers: dict[str, Any]
    pool: str = Field(default="default", min_length=1, max_length=NAME_MAX)


@router.post("/tasks", responses=declared(TaskCreated))
def create_task(body: TaskIn, session: Session = DB,
                who: Principal = Depends(allow("lead"))) -> dict[str, str]:
    """Send a stored event to review by hand. 409, naming the task, while the event
    already has an open task under the same rubric version (a create sent again after a
    timeout makes no second task)."""
    return {"task_id": tasks.create_task(
        session, event_id=body.event_id, rubric=body.rubric, actor=who.actor,
        severity=body.severity, pool=body.pool, overlap_k=body.overlap,
        sla_hours=body.sla_hours, skills=body.skills)}


@router.post("/tasks/gold", responses=declared(TaskCreated))
def create_gold(body: GoldIn, session: Session = DB,
                who: Principal = Depends(allow("lead"))) -> dict[str, str]:
    """Add a gold (calibration) item with known answers. 409, naming it, while the event
    already has a gold item under the same rubric version (not cancelled)."""
    return {"task_id": tasks.create_gold_task(session, event_id=body.event_id,
                                              rubric=body.rubric, answers=body.answers,
                                              actor=who.actor, pool=body.pool)}


class GoldCarryIn(RequestBody):
    rubric: str = Field(description="the version to carry to, ID@N (ID alone: the newest)")
    dry_run: bool = False
    ignore_guidelines: bool = Field(default=False, description="carry even where the "
                                    "rubric-wide guidelines or worked examples changed")


@router.post("/tasks/gold/carry", responses=declared(GoldCarry))
def carry_gold_items(body: GoldCarryIn, session: Session = DB,
                     who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    """Carry gold items at earlier versions of a rubric over to ``rubric`` (ID@N) where
    the questions their known answers cover, and N's required questions, did not
    change; the others come back in ``skipped`` with the reason. 422 naming ``rubric``
    for a version that is not published."""
    return carry_gold(session, body.rubric, actor=who.actor, dry_run=body.dry_run,
                      ignore_guidelines=body.ignore_guidelines)


@router.get("/tasks/{task_id}", responses=declared(TaskRecord))
def task_detail(task_id: str, session: Session = DB,
                who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    return views.task_detail(session, task_id, viewer=who.reviewer_id)


@router.get("/queue/stats", responses=declared(QueueStats))
def queue_stats(session: Session = DB,
                _: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    return views.queue_stats(session)


class TriageIn(RequestBody):
    """The settings of one run, as ``hilt queue triage --config F.yaml`` takes them (see
    :class:`hilt.review.triage.TriageConfig`); a setting left out keeps its default."""

    w_severity: StrictFloat | None = Field(default=None, description="weight of severity")
    w_sla: StrictFloat | None = Field(default=None, description="weight of SLA urgency")
    w_uncertainty: StrictFloat | None = Field(default=None,
                                              description="weight of uncertainty")
    w_reach: StrictFloat | None = Field(default=None,
                                        description="weight of near-duplicate reach")
    sla_tau_hours: StrictFloat | None = Field(default=None, description="hours over "
                                              "which SLA urgency decays (> 0)")
    dup_threshold: StrictFloat | None = Field(default=None, description="Jaccard "
                                              "similarity at which items cluster, 0 to 1")
    num_perm: StrictInt | None = Field(default=None, description="MinHash permutations "
                                       "(an integer ≥ 2)")


@router.post("/queue/triage", responses=declared(TriageRun))
def triage(body: TriageIn | None = None, session: Session = DB,
           who: Principal = Depends(allow("lead"))) -> dict[str, int]:
    """Expire leases, cluster near-duplicates, re-escalate SLA breaches, re-prioritise;
    with a body, under those settings (as ``hilt queue triage --config``), which are
    checked before anything runs (422 naming the setting)."""
    given = body.model_dump(exclude_none=True) if body is not None else {}
    return run_triage(session, utcnow(), actor=who.actor,
                      config=TriageConfig.from_dict(given))


# --- reviewers (leads) ------------------------------------------------------------------


class ActivationIn(RequestBody):
    reason: str = Field(default="", max_length=1000, description="why, for the audit log")


@router.post("/reviewers/{reviewer_id}/deactivate", responses=declared(ReviewerActivation))
def deactivate_reviewer(reviewer_id: str, body: ActivationIn | None = None,
                        session: Session = DB,
                        who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    """Deactivate a reviewer: their tokens are refused, their page sessions and leases end
    (the tasks go back to the queue)."""
    return set_reviewer_active(session, reviewer_id, False, actor=who.actor,
                               reason=(body or ActivationIn()).reason)


@router.post("/reviewers/{reviewer_id}/reactivate", responses=declared(ReviewerActivation))
def reactivate_reviewer(reviewer_id: str, body: ActivationIn | None = None,
                        session: Session = DB,
                        who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    return set_reviewer_active(session, reviewer_id, True, actor=who.actor,
                               reason=(body or ActivationIn()).reason)


# --- adjudication -----------------------------------------------------------------------


class DecisionIn(RequestBody):
    answers: dict[str, Any]
    rationale: str = Field(min_length=1)
    cause: str = Field(description="guideline_gap, ambiguous_input, reviewer_error or "
                                   "subjective")


@router.get("/adjudications", responses=declared(list[PendingAdjudication], 200, PAGED))
def pending_adjudications(request: Request, response: Response,
                          limit: int = Query(50, ge=1, le=500),
                          after: str | None = after_query(), session: Session = DB,
                          who: Principal = Depends(allow("adjudicator", "lead"))
                          ) -> list[dict[str, Any]]:
    """Tasks waiting for an adjudicator, most urgent first (equal priorities by earliest
    SLA deadline, then oldest task, then task id), without the items the caller is
    reviewing under another task (blind review); ``limit`` a page. When more follow, the
    ``X-Next-After`` header holds the cursor to pass as ``after`` for the next page and
    ``Link`` (``rel="next"``) that page's URL; neither is there on the last page. A
    cursor hilt did not give is a 422 naming ``after``."""
    rows = adjudication.pending_rows(session, limit=limit + 1, viewer=who.reviewer_id,
                                     after=after)
    return adjudication.pending_views(one_page(rows, limit, adjudication.PENDING_ORDER,
                                               request, response))


@router.get("/adjudications/{task_id}", responses=declared(CaseFile))
def case_file(task_id: str, session: Session = DB,
              who: Principal = Depends(allow("adjudicator", "lead"))) -> dict[str, Any]:
    """Every review and rationale of the task, for the adjudicator (403 while the caller
    is reviewing the same item under another task)."""
    return adjudication.case_file(session, task_id, viewer=who.reviewer_id)


@router.post("/adjudications/{task_id}", responses=declared(AdjudicationDecided))
def decide(task_id: str, body: DecisionIn, session: Session = DB,
           who: Principal = Depends(allow("adjudicator", "lead"))) -> dict[str, str]:
    adjudication_id = adjudication.adjudicate(
        session, task_id, reviewer_of(who) if who.reviewer_id else who.actor,
        answers=body.answers, rationale=body.rationale, cause=body.cause,
        token_role=who.role)
    return {"adjudication_id": adjudication_id}


# --- labels -----------------------------------------------------------------------------


def label_cursor(record: Any) -> str:
    """The keyset cursor after a label: its decision time (UTC) and id, opaque to clients
    and URL-safe as it is (no '+' that a query string would read as a space)."""
    when = record.decided_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{when}~{record.label_id}"


def parse_label_cursor(cursor: str) -> tuple[datetime, str]:
    when, sep, label_id = cursor.partition("~")
    try:
        decided = datetime.fromisoformat(when)
    except ValueError:
        decided = None
    if not sep or not label_id or decided is None or decided.tzinfo is None:
        raise InputError("not a cursor from next_after of an earlier page", field="after")
    return decided, label_id


def _aware(when: datetime | None) -> datetime | None:
    # decided_at is stored in UTC; a time without an offset is read as UTC.
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


@router.get("/labels", responses=declared(LabelPage))
def labels(request: Request, rubric_id: str | None = None,
           provenance: str | None = Query(None, description="one of "
                                          + ", ".join(PROVENANCE_KINDS)),
           min_confidence: float | None = Query(None, ge=0, le=1, allow_inf_nan=False),
           since: datetime | None = Query(None, description="only labels decided at or "
                                          "after this time (ISO 8601; UTC if no offset)"),
           after: str | None = Query(None, description="next_after of the previous page"),
           limit: int = Query(1000, ge=1, le=10_000), session: Session = DB,
           who: Principal = Depends(allow("lead", "adjudicator", "service"))
           ) -> dict[str, Any]:
    """Final labels in decision order, a page at a time: pass the response's
    ``next_after`` as ``after`` for the next page (``null``: this was the last).

    Left out: gold labels for adjudicators, and the labels of items the caller is
    reviewing under another task (:mod:`hilt.review.blind`). What this page left out
    is counted under ``withheld`` (``count``, ``gold``, ``under_review``, ``reason``),
    present only when the page left some out, so that nobody takes the page for all
    the labels there are."""
    # An unknown parameter (a misspelt filter) is refused for every route at once:
    # hilt.api.deps.known_query_only. A provenance no label has (``Gold``: the names are
    # lower case) would answer an empty page, as if there were no such labels.
    if provenance is not None and provenance not in PROVENANCE_KINDS:
        raise InputError(f"unknown provenance {provenance!r}; one of: "
                         f"{', '.join(PROVENANCE_KINDS)}", field="provenance")
    out: list[dict[str, Any]] = []
    last = None
    left_out = {"gold": 0, "under_review": 0}
    batch = min(limit + 1, 2000)
    records = iter_final_labels(
        session, since=_aware(since), rubric_ids=[rubric_id] if rubric_id else None,
        provenance=[provenance] if provenance else None, min_confidence=min_confidence,
        after=parse_label_cursor(after) if after else None, batch=batch)
    for record, hidden in blind.flag_under_review(session, who.reviewer_id, records,
                                                  chunk=batch):
        if len(out) >= limit:  # one more exists: there is a next page
            break
        last = record
        if hidden:
            left_out["under_review"] += 1
            continue
        if record.provenance == "gold" and gold.closed_to(who.role):
            left_out["gold"] += 1  # adjudicators also review, and gold calibrates them
            continue
        out.append({**record.__dict__, "review_ids": list(record.review_ids),
                    "decided_at": record.decided_at.isoformat()})
    else:
        last = None
    page: dict[str, Any] = {"labels": out,
                            "next_after": label_cursor(last) if last is not None else None}
    if any(left_out.values()):
        page["withheld"] = {
            "count": sum(left_out.values()), **left_out,
            "reason": "gold labels are not shown to adjudicators (gold items calibrate "
                      "them), and the labels of items the caller is reviewing stay "
                      "closed until those reviews are submitted (blind review)"}
    return page
