"""The database side of label quality: Dawid–Skene over the review store, the workflow's
aggregator, refreshing automatic labels after a refit, and (re-exported from
:mod:`hilt.quality.reviewer_store`) reviewer calibration.

**Fitting.** For every single-choice question of a rubric, :func:`fit_question_models`
fits one gold-anchored Dawid–Skene model (:class:`hilt.quality.DawidSkene`) over *all*
reviews of that question in the store — every task, gold tasks included, with gold
tasks clamped to their known answers — so each reviewer's confusion matrix is estimated
from all of their work. Rubric versions in which the question has exactly the same
options are pooled (the question means the same thing); a version that changed the
options gets a model of its own. Each fit is stored in ``quality_aggregation_models``
with the settings in force and audited (``quality.model_fit``).

**Stored fits are checked** before anything uses them
(:func:`hilt.quality.stored_model.check_stored_model`): a row edited by hand (or
written by an older version) into a NaN, an infinity, a missing or short list, or text
where a number belongs is refused with an error naming the model, its rubric and
question, and the field (``confusion.0.1.2``) — HTTP 409, CLI exit 2 — by the model
listing, the reviewer report and the workflow's aggregator alike, until a refit stores a
usable model in its place. A new fit that comes out non-finite is not stored.

**Resolving.** :func:`task_aggregator` is what the review workflow uses by default
(:func:`hilt.review.reviews.default_aggregator`): the latest stored model of each
question scores a task's answers (:class:`hilt.quality.model_aggregator.QuestionModel`),
provided each of the task's reviewers has at least ``min_reviewer_answers`` answers in
the fit; otherwise, and before any fit, majority vote. A posterior below
``min_confidence`` sends the question to adjudication.

**Refreshing.** :func:`refresh_labels` (run by ``hilt quality refresh`` or a scheduled
job) refits, then re-aggregates with the new models every task that is waiting for an
adjudicator or was resolved automatically (provenance ``unanimous``, ``majority`` or
``model_aggregated``). Labels set by an adjudicator, gold labels and labels propagated
to near-duplicates are never recomputed here (propagated copies follow their
representative). A waiting task that the model now decides confidently is resolved; a
resolved label whose value or provenance changes is updated in place (same label id)
with a ``label.refresh`` audit entry holding the old and new values; confidence-only
updates are listed in the run's ``quality.refresh`` entry; a resolved task whose label
now falls below the threshold goes back to adjudication (``reopen_low_confidence``).
"""

from hilt.quality.aggregation_store import (
    QuestionGroup,
    fit_question_models,
    latest_models,
    question_groups,
    settings_from_dict,
    task_aggregator,
)
from hilt.quality.label_refresh import (
    AUTOMATIC_PROVENANCE,
    RefreshResult,
    refresh_all,
    refresh_labels,
)
from hilt.quality.model_aggregator import ModelAggregationConfig
from hilt.quality.reviewer_store import (
    reviewer_quality_report,
    set_reviewer_status,
    status_note,
    update_reviewer_statuses,
)

__all__ = [
    "AUTOMATIC_PROVENANCE",
    "ModelAggregationConfig",
    "QuestionGroup",
    "RefreshResult",
    "fit_question_models",
    "latest_models",
    "question_groups",
    "refresh_all",
    "refresh_labels",
    "reviewer_quality_report",
    "set_reviewer_status",
    "status_note",
    "settings_from_dict",
    "task_aggregator",
    "update_reviewer_statuses",
]
