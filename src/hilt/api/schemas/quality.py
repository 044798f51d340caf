"""Response bodies of the quality router (``/v1/quality``). Every share comes with its
interval: ``ci_low``/``ci_high`` at the row's ``confidence`` (0.95 unless set)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from hilt.api.schemas import Schema, free_form


class ReviewerQuality(Schema):
    """One reviewer's line of the quality report."""

    reviewer: str
    role: str
    active: bool
    status: str = Field(description="the stored status")
    computed_status: str = Field(description="the status replaying the gold answers gives now")
    may_take_production_tasks: bool
    n_answers: int
    n_gold: int = Field(description="gold answers")
    n_gold_items: int = Field(description="gold items behind them (the interval's units)")
    gold_correct: int
    gold_accuracy: float | None = Field(description="null without gold answers")
    gold_ci_low: float
    gold_ci_high: float
    rolling_gold_accuracy: float | None = Field(description="over the last gold items "
                                                            "(the rolling window)")
    rolling_n_gold: int
    rolling_n_gold_items: int
    rolling_ci_low: float
    rolling_ci_high: float
    trend_alarm: bool = Field(description="whether the CUSUM on gold answers fired")
    trend_alarm_at: datetime | None
    last_change_reason: str | None
    open_round: str | None = Field(description="the calibration set or probation round "
                                               "still open, in words")
    n_compared: int = Field(description="answers compared with final labels")
    final_label_agreement: float | None
    agreement_ci_low: float
    agreement_ci_high: float
    model_n_answers: int
    model_accuracy: float | None = Field(description="the aggregation model's estimate")
    model_ci_low: float
    model_ci_high: float
    confidence: float = Field(description="the level of every interval in the row")


class ReviewerEstimate(Schema):
    reviewer: str
    n_answers: int
    estimated_accuracy: float | None
    ci_low: float = Field(description="95 % Wilson interval on the expected count of "
                                      "correct answers")
    ci_high: float


class AggregationModel(Schema):
    """The latest fit of one rubric question's aggregation model."""

    model_id: str
    rubric_id: str
    question_id: str
    rubric_versions: list[int]
    method: str
    classes: list[str]
    priors: list[float] = Field(description="class priors, in the order of `classes`")
    priors_ci: list[list[float]] = Field(description="[low, high] of each prior (95 %)")
    n_items: int
    n_answers: int
    n_gold_items: int
    n_iter: int
    converged: bool
    config: dict[str, Any] = free_form("the aggregation settings of the fit")
    fitted_at: datetime
    fitted_by: str
    reviewers: list[ReviewerEstimate]


class FittedModel(Schema):
    question_id: str
    model_id: str
    versions: list[int] = Field(description="the rubric versions pooled in the fit")
    n_reviewers: int


class RubricRefresh(Schema):
    rubric_id: str
    models: list[FittedModel]
    labels_changed: int
    confidences_updated: int
    tasks_resolved: int
    tasks_reopened: int


class StatusChange(Schema):
    reviewer: str
    old: str
    new: str
    reason: str
    n_gold: int
    n_gold_items: int
    gold_accuracy: float | None
    gold_ci_low: float
    gold_ci_high: float
    confidence: float


class QualityRefresh(Schema):
    rubrics: list[RubricRefresh]
    status_changes: list[StatusChange]


class StatusSet(Schema):
    reviewer: str
    status: str
    note: str | None = Field(default=None, description="what the decision leaves the "
                             "reviewer unable to do, e.g. onboarding with too few gold "
                             "items left to answer; null when nothing")
