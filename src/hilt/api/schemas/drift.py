"""Response bodies of the drift router (``/v1/drift``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from hilt.api.schemas import Schema, free_form, sometimes
from hilt.api.schemas.data import VersionSummary


class Figure(Schema):
    value: float
    ci_low: float = Field(description="95 % interval")
    ci_high: float
    n: int = sometimes("the trials or items behind it, when known")


class AlertIntervals(Schema):
    """The figures an alert is about, each with its 95 % interval."""

    category: str = sometimes("shift alerts: the category whose share moved most")
    reference: Figure | None
    current: Figure | None
    change: Figure | None = Field(description="rate and agreement alerts: the difference "
                                              "(null for shift alerts)")
    note: str = sometimes("shift alerts: PSI and JSD are descriptive")


class AlertFound(Schema):
    """One monitor test in one window that crossed its threshold."""

    id: str = Field(description="the same monitor, group and window give the same id")
    monitor: str
    group: dict[str, str] = Field(description="what the monitor watched, e.g. "
                                              "{\"rubric\": \"harm@2\"}")
    window_start: datetime
    window_end: datetime
    reference_start: datetime
    test: str
    p_value: float
    alpha: float = Field(description="the window's false-alarm budget over `n_tests`")
    effect_name: str
    effect: float
    min_effect: float
    n_current: int
    n_reference: int
    n_tests: int
    message: str
    intervals: AlertIntervals | None = Field(description="null when `detail` does not hold "
                                                         "them")
    detail: dict[str, Any] = free_form("the full test result: counts, rates with intervals, "
                                       "divergences")


class StoredAlert(AlertFound):
    status: str = Field(description="open or acknowledged")
    created_at: datetime
    acknowledged_by: str | None = Field(description="who acknowledged it first")
    acknowledged_at: datetime | None = Field(description="when it was first acknowledged")
    note: str | None


class UntestedGroup(Schema):
    """A monitor and group that had data but could not be tested in some windows."""

    monitor: str
    group: dict[str, str]
    windows: int
    reasons: dict[str, int] = Field(description="reason -> windows")
    last_window_start: datetime
    last_reason: str
    last_n_current: int
    last_n_reference: int


class LeftOut(Schema):
    """Events a monitor left out of the windows it read."""

    monitor: str
    group: dict[str, str]
    events: int
    reason: str


class DriftRun(Schema):
    stored: bool = Field(description="false for a dry run")
    alerts: list[AlertFound] = Field(description="the new alerts (all found on a dry run)")
    untested: list[UntestedGroup]
    left_out: list[LeftOut]


class Stratum(Schema):
    available: int = Field(description="labels under the old version to sample from")
    sampled: int


class BridgeCreated(Schema):
    bridge_id: str
    question_id: str
    tasks: int
    strata: dict[str, Stratum] = Field(description="old label -> its sample")


class RowChange(Schema):
    old: str
    n: int
    changed: int
    rate: float | None
    ci_low: float
    ci_high: float
    flagged: bool


class TransitionMatrix(Schema):
    """P(new label | old label), estimated from the items re-reviewed so far."""

    old_categories: list[str]
    new_categories: list[str]
    counts: list[list[int]] = Field(description="counts[i][j]: old_categories[i] -> "
                                                "new_categories[j]")
    cells: dict[str, dict[str, list[float | None]]] = Field(
        description="old -> new -> [share, low, high] at the row confidence (share null "
                    "in a row without items)")
    rows: list[RowChange]
    row_confidence: float
    mapping: dict[str, str]
    status: str = Field(description="compatible, incompatible or unknown")
    reason: str
    untestable: list[str]
    silent_policy_change: bool
    flagged: list[str]


class BridgeStatus(Schema):
    bridge_id: str
    rubric_id: str
    old_version: int
    new_version: int
    question_id: str
    items: int
    relabelled: int = Field(description="items re-reviewed so far")
    task_status: dict[str, int]
    complete: bool
    strata: dict[str, Stratum]
    settings: dict[str, Any] = free_form("the bridge's settings (change_threshold, "
                                         "compatible_margin, confidence, min_row_n, pool, "
                                         "overlap_k)")
    matrix: TransitionMatrix


class QuestionCompatibility(Schema):
    bridge_id: str
    status: str
    reason: str
    flagged: list[str]
    untestable: list[str]
    relabelled: int
    items: int


class CompatDecision(Schema):
    decision_id: str
    question_id: str | None = Field(description="null: the whole version pair")
    kind: str
    mapping: dict[str, str]
    reason: str
    decided_by: str
    decided_at: datetime


class PairCompatibility(Schema):
    """Whether labels of two consecutive rubric versions may be mixed."""

    rubric_id: str
    old_version: int
    new_version: int
    status: str = Field(description="compatible, incompatible or unknown, from the bridge "
                                    "evidence alone")
    mixable: bool = Field(description="compatible, or a standing decision covers every "
                                      "question that is not")
    reason: str
    questions: dict[str, QuestionCompatibility] = Field(description="question id -> its "
                                                                    "newest bridge")
    decisions: list[CompatDecision]


class Compatibility(Schema):
    """Whether labels of two versions of a rubric may be mixed."""

    rubric_id: str
    old_version: int
    new_version: int
    status: str = Field(description="compatible, incompatible or unknown")
    mixable: bool
    reason: str
    questions: dict[str, QuestionCompatibility | PairCompatibility] = Field(
        description="between consecutive versions: question id -> its newest bridge; "
                    "across several versions: '@OLD->@NEW' -> each consecutive pair")
    decisions: list[CompatDecision]


class DecisionRecorded(Schema):
    decision_id: str
    kind: str
    question_id: str | None
    mapping: dict[str, str]


class ModelSummary(Schema):
    id: str
    kind: str = Field(description="reward, sft or classifier")
    name: str
    base_model: str
    dataset_hash: str
    seed: int
    code_version: str
    previous_id: str | None
    artifact_path: str
    created_at: datetime
    created_by: str
    accuracy: float | None = Field(description="the headline accuracy; null where the "
                                               "metrics hold none (an SFT model)")
    accuracy_ci_low: float | None = Field(description="its 95 % Wilson interval")
    accuracy_ci_high: float | None
    accuracy_n: int | None
    accuracy_basis: Literal["held_out", "held_out_overlapping_training", "out_of_fold",
                            "out_of_fold_optimistic"] | None = Field(
        description="what the headline accuracy rests on: pairs or rows the model did not "
                    "train on, held-out ones some of which it trained on (optimistic), or "
                    "a classifier's out-of-fold predictions on its own training data "
                    "(optimistic after its encoder was fine-tuned on them); null without "
                    "an accuracy")


class MissingIds(Schema):
    count: int
    ids: list[str] = Field(description="at most `limit` of them")


class LineageCounts(Schema):
    events: int
    labels: int
    reviews: int
    adjudications: int


class LineageRubric(Schema):
    rubric: str = Field(description="ID@VERSION")
    published: bool
    title: str = sometimes("when published")
    content_hash: str = sometimes("when published")
    changelog: str = sometimes("when published")
    published_at: datetime = sometimes("when published")


class MixProblem(Schema):
    rubric_id: str
    old_version: int
    new_version: int
    status: str
    reason: str
    fix: str


class LineageReview(Schema):
    id: str
    reviewer: str
    rubric: str
    submitted_at: datetime


class LineageAdjudication(Schema):
    id: str
    adjudicator: str
    cause: str
    rubric: str
    decided_at: datetime


class DatasetLineage(Schema):
    dataset: VersionSummary
    counts: LineageCounts
    missing_links: dict[str, MissingIds] = Field(description="events, labels, reviews or "
                                                             "adjudications no longer stored")
    events_erased: int
    missing: list[str] = Field(description="the broken links, in words")
    rubric_versions: list[LineageRubric]
    policy_versions: list[str]
    rubric_mix_problems: list[MixProblem]
    reviews_by_reviewer: dict[str, int]
    adjudications_by_cause: dict[str, int]
    reviews: list[LineageReview] = Field(description="at most `limit`")
    adjudications: list[LineageAdjudication] = Field(description="at most `limit`")


class ModelLineage(Schema):
    model: ModelSummary
    datasets: list[DatasetLineage]
    missing: list[str]
    previous_versions: list[str] = Field(description="earlier versions, newest first")
