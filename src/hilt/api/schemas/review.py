"""Response bodies of the review router: rubrics, escalation rules, tasks, reviewers,
adjudication and final labels."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, RootModel

from hilt.api.schemas import Schema, free_form, sometimes
from hilt.events.model import Interaction, Response

RUBRIC_REF = "ID@VERSION"
ANSWERS = "question id -> answer (its form follows the question's kind)"

# --- rubrics ---------------------------------------------------------------------------


class GoldNotice(Schema):
    pinned_to_earlier_versions: dict[str, int] = Field(
        description="earlier version -> how many gold items are pinned to it")
    note: str = Field(description="what to do about them")


class PublishedRubric(Schema):
    id: str
    version: int
    content_hash: str
    gold: GoldNotice = sometimes("the rubric's gold items pinned to earlier versions, "
                                 "which need answering again under this one; only when "
                                 "there are any")


class RubricSummary(Schema):
    id: str
    version: int
    title: str
    changelog: str
    content_hash: str
    published_at: datetime
    published_by: str


class FieldChange(Schema):
    from_: Any = Field(alias="from", description="the value in the first version")
    to: Any = Field(description="the value in the second version")


class RubricDiff(Schema):
    from_: str = Field(alias="from", description=RUBRIC_REF)
    to: str = Field(description=RUBRIC_REF)
    changelog: str = Field(description="the second version's changelog")
    questions_added: list[str]
    questions_removed: list[str]
    questions_changed: dict[str, dict[str, FieldChange]] = Field(
        description="question id -> changed field -> its two values")
    title_changed: bool
    guidelines_diff: list[str] = Field(description="unified diff of the guidelines, by line")
    examples_added: list[str] = Field(description="titles of the worked examples added")
    examples_removed: list[str] = Field(description="titles of the worked examples removed")
    identical: bool


class GuidelineProposal(Schema):
    """An adjudication whose cause was a guideline gap."""

    adjudication_id: str
    task_id: str
    event_id: str
    rubric_version: int
    decision: dict[str, Any] = free_form(f"the adjudicator's answers: {ANSWERS}")
    rationale: str
    adjudicator: str
    decided_at: datetime


class RubricVersion(Schema):
    id: str
    version: int
    changelog: str
    content_hash: str
    spec: dict[str, Any] = free_form("the rubric document as published (docs/review.md)")


# --- escalation ------------------------------------------------------------------------


class PublishedRuleSet(Schema):
    id: str
    version: int
    active: bool


class RuleSetActivation(Schema):
    id: str
    version: int = Field(description="0: the rule set was deactivated")
    active: bool
    previously_active: str | None = Field(description="the versions active before "
                                                      "(ID@VERSION, comma-separated)")


class RuleBacktest(Schema):
    rule: str
    fires: int = Field(description="evaluated events the rule fires on")
    creates_tasks: int = Field(description="events whose task the rule would lead (the "
                                           "most severe of the rules that fire)")
    audit_rate: float | None
    rate: float | None = Field(description="fires / evaluated events; null over none")
    n: int = Field(description="the evaluated events the rate is over")
    ci_low: float | None = Field(description="95 % Wilson interval of the rate")
    ci_high: float | None


class Backtest(Schema):
    """How many stored events each rule would escalate (nothing is created)."""

    rule_set: str
    version: int = Field(description="the version whose audit draws were used (0: a draft)")
    version_note: str = sometimes("why that version, when it was not given")
    events: int
    evaluated: int
    without_review_consent: int
    review_samples: int
    erased: int
    escalated: int
    by_severity: dict[str, int]
    rules: list[RuleBacktest]


# --- tasks -----------------------------------------------------------------------------


class TaskCreated(Schema):
    task_id: str


class GoldCarried(Schema):
    old_task: str = Field(description="the gold item at the earlier version (kept)")
    new_task: str | None = Field(description="the gold item made at the new version; "
                                 "null on a dry run")
    event_id: str
    from_version: int


class GoldSkipped(Schema):
    task_id: str
    event_id: str
    from_version: int
    reason: str = Field(description="the questions that changed or are missing, "
                        "'guidelines changed', or the newer gold item superseding it")


class GoldCarry(Schema):
    rubric: str = Field(description="the rubric id")
    to_version: int
    dry_run: bool
    carried: list[GoldCarried]
    skipped: list[GoldSkipped]


class RuleMatch(Schema):
    """An escalation rule that fired on the event."""

    rule: str
    severity: str
    values: dict[str, Any] = free_form("the event's fields the rule's condition read "
                                       "(emptied once the event is erased)")
    sampling_probability: float
    audit_draw: float = sometimes("for a sampled rule: the event's draw")


class ManualMatch(Schema):
    """A task made by hand (POST /v1/tasks)."""

    rule: str = Field(description="manual")
    by: str = Field(description="who made it")


class BridgeMatch(Schema):
    """A re-review task of a drift bridge set."""

    rule: str = Field(description="bridge")
    bridge_id: str
    old_label_id: str
    stratum: str


class TaskEscalation(Schema):
    rule_set: str | None
    version: int | None
    rule: str | None = Field(description="the leading rule (manual, bridge, gold for tasks "
                                         "not made by escalation)")
    matched: list[RuleMatch | ManualMatch | BridgeMatch]
    sampling_probability: float
    level: int = Field(description="how many times the task was escalated for its SLA")


class TaskLease(Schema):
    assignment_id: str
    reviewer_id: str
    status: str
    lease_expires_at: datetime


class TaskLabel(Schema):
    question_id: str
    value: Any = Field(description="by question kind (see FinalLabel)")
    provenance: str
    confidence: float
    review_ids: list[str]
    adjudication_id: str | None


class TaskRecord(Schema):
    """The full record of a task, for leads."""

    task_id: str
    event_id: str
    status: str
    pool: str
    severity: str = Field(description="sev0 (most severe) to sev3")
    priority: float
    rubric: str = Field(description=RUBRIC_REF)
    overlap_k: int = Field(description="reviews the task asks for")
    reviews_done: int
    open_slots: int
    is_gold: bool
    reach: int = Field(description="events the task stands for (its near-duplicates)")
    cluster_id: str | None
    representative_id: str | None
    sla_due_at: datetime
    sla_breached_at: datetime | None
    overdue_hours: float | None = Field(description="hours past the first deadline missed; "
                                                    "null while within the SLA")
    escalation: TaskEscalation
    adjudication_reasons: dict[str, str] | None = Field(
        description="question id -> why it went to adjudication")
    leases: list[TaskLease]
    labels: list[TaskLabel]


class QueueStats(RootModel[dict[str, dict[str, int]]]):
    """Pool -> task status -> count; ``gold_held_back`` beside the statuses counts the
    pool's gold tasks that the queue does not serve."""


class TriageRun(Schema):
    leases_expired: int
    tasks_clustered: int
    sla_breaches: int = Field(description="tasks that missed their first SLA in this run")
    sla_repeat_breaches: int = Field(description="escalated tasks that missed their "
                                                 "escalated deadline too")
    priorities_refreshed: int


class ReviewerActivation(Schema):
    reviewer: str
    active: bool
    was_active: bool
    sessions_ended: int
    leases_ended: int


# --- adjudication ----------------------------------------------------------------------


class PendingAdjudication(Schema):
    task_id: str
    event_id: str
    severity: str
    rubric: str = Field(description=RUBRIC_REF)
    reach: int
    reasons: dict[str, str] = Field(description="question id -> why it needs a decision")
    sla_due_at: datetime
    sla_breached_at: datetime | None
    overdue_hours: float | None


class CaseRubric(Schema):
    id: str
    version: int
    spec: dict[str, Any] = free_form("the rubric document")


class CaseItem(Schema):
    event_id: str
    interaction: Interaction | None = Field(description="null once the event is erased")
    responses: list[Response] = Field(description="the responses to review (empty once the "
                                    "event is erased)")


class CaseReview(Schema):
    review_id: str
    reviewer_id: str
    answers: dict[str, Any] = free_form(ANSWERS)
    confidence: float | None
    rationale: str | None
    rewrite: str | None
    time_spent_s: float | None
    late: bool
    submitted_at: datetime


class CaseFile(Schema):
    task_id: str
    status: str = Field(description="needs_adjudication or resolved")
    severity: str
    reasons: dict[str, str] = Field(description="question id -> why it needs a decision")
    rubric: CaseRubric
    item: CaseItem
    reviews: list[CaseReview]


class AdjudicationDecided(Schema):
    adjudication_id: str


# --- labels ----------------------------------------------------------------------------


class FinalLabel(Schema):
    """The resolved answer to one rubric question for one task's event."""

    label_id: str
    event_id: str
    task_id: str
    rubric_id: str
    rubric_version: int
    question_id: str
    question_kind: str
    value: Any = Field(description="by question kind: single_choice, free_text and rewrite "
                                   "a string; multi_choice a list of strings; scale a "
                                   "number; preference {chosen, rejected} (response "
                                   "indices); ranking a list of response indices, best "
                                   "first")
    provenance: str
    confidence: float
    review_ids: list[str]
    adjudication_id: str | None
    policy_version: str | None
    decided_at: datetime
    source_task_id: str | None = Field(description="a copied label (cluster_propagated): "
                                                   "the reviewed task it was copied from")
    source_event_id: str | None = Field(description="that task's event")
    source_consent: list[str] | None = Field(description="that event's consent scopes")


class LabelsWithheld(Schema):
    count: int
    gold: int
    under_review: int
    reason: str


class LabelPage(Schema):
    labels: list[FinalLabel] = Field(description="in decision order")
    next_after: str | None = Field(description="the cursor to pass as `after` for the next "
                                               "page; null on the last page")
    withheld: LabelsWithheld = sometimes("what this page left out (gold labels for "
                                         "adjudicators, items the caller is reviewing); "
                                         "only when it left some out")
