"""Dawid–Skene over the review store: fitting one model per rubric question over all of
its reviews, storing the fits, and the workflow's aggregator built from the latest fits.
See :mod:`hilt.quality.store` for the whole picture."""


from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.quality.answers import Answers
from hilt.quality.calibration import CalibrationConfig, expected_count_interval
from hilt.quality.dawid_skene import DawidSkene
from hilt.quality.model_aggregator import (
    MODEL_KINDS,
    ModelAggregationConfig,
    ModelAggregator,
    QuestionModel,
)
from hilt.quality.stored_model import check_stored_model, check_versions
from hilt.review.aggregation import (
    Aggregator,
    majority_aggregator,
)
from hilt.review.reviews import cached_spec
from hilt.review.rubric_spec import RubricSpec
from hilt.review.tasks import new_id
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.quality import AggregationModelRow
from hilt.store.tables.review import (
    ReviewRow,
    ReviewTaskRow,
    RubricVersionRow,
)

# Labels a refit may recompute: those no person decided.
AUTOMATIC_PROVENANCE = ("unanimous", "majority", "model_aggregated")
# Stored fits never change, so parsed models are cached by id.
_MODELS: dict[str, QuestionModel] = {}
_MODEL_CACHE_SIZE = 256


def _remember(model: QuestionModel) -> QuestionModel:
    # Refits keep adding models; only recent ones are ever used again.
    while len(_MODELS) >= _MODEL_CACHE_SIZE:
        _MODELS.pop(next(iter(_MODELS)))
    _MODELS[model.model_id] = model
    return model


@dataclass(frozen=True)
class QuestionGroup:
    """A single-choice question and the rubric versions in which it has these options."""

    question_id: str
    options: tuple[str, ...]
    versions: tuple[int, ...]


def question_groups(session: Session, rubric_id: str) -> list[QuestionGroup]:
    """The rubric's model-aggregated questions, grouped by identical options."""
    versions = session.execute(sa.select(RubricVersionRow.version).where(
        RubricVersionRow.rubric_id == rubric_id).order_by(RubricVersionRow.version)).scalars()
    grouped: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for version in versions:
        for q in cached_spec(session, rubric_id, version).questions:
            if q.kind in MODEL_KINDS:
                key = (q.id, tuple(o.value for o in q.options))
                grouped.setdefault(key, []).append(version)
    return [QuestionGroup(qid, options, tuple(vs)) for (qid, options), vs in grouped.items()]


@dataclass(frozen=True)
class _Review:
    id: str
    task_id: str
    reviewer_id: str
    rubric_version: int
    answers: dict[str, Any]
    confidence: float | None
    is_gold: bool
    gold_answers: dict[str, Any] | None


def _rubric_reviews(session: Session, rubric_id: str) -> list[_Review]:
    r, t = ReviewRow, ReviewTaskRow
    rows = session.execute(
        sa.select(r.id, r.task_id, r.reviewer_id, r.rubric_version, r.answers, r.confidence,
                  t.is_gold, t.gold_answers)
        .join(t, t.id == r.task_id).where(r.rubric_id == rubric_id)
        .order_by(r.submitted_at, r.id)).all()
    return [_Review(*row) for row in rows]


def row_values(row: AggregationModelRow) -> dict[str, Any]:
    """A stored fit's columns by name, as :func:`check_stored_model` reads them."""
    return {c.key: getattr(row, c.key) for c in AggregationModelRow.__table__.columns}


def _model_from_row(row: AggregationModelRow) -> QuestionModel:
    # Every field is checked first; of the recorded settings only the two that score
    # tasks are read back (with their defaults when absent): a stored fit stays usable
    # even if it was recorded before the settings were checked as strictly as now.
    fit = check_stored_model(row_values(row))
    return QuestionModel(
        model_id=fit.model_id, classes=fit.classes, reviewers=fit.reviewers,
        confusion=fit.confusion, priors=fit.priors, reviewer_answers=fit.reviewer_answers,
        min_reviewer_answers=fit.min_reviewer_answers, min_confidence=fit.min_confidence)


def _fit_group(session: Session, rubric_id: str, group: QuestionGroup,
               reviews: Sequence[_Review], config: ModelAggregationConfig, *,
               actor: str, now: datetime) -> AggregationModelRow | None:
    """Fit and store one question's model; ``None`` when nobody answered it yet."""
    versions = set(group.versions)
    items, reviewers, labels = [], [], []
    gold: dict[str, str] = {}
    for review in reviews:
        if review.rubric_version not in versions or group.question_id not in review.answers:
            continue
        items.append(review.task_id)
        reviewers.append(review.reviewer_id)
        labels.append(review.answers[group.question_id])
        known = (review.gold_answers or {}).get(group.question_id)
        if review.is_gold and known is not None:
            gold[review.task_id] = known
    if not items:
        return None
    answers = Answers.from_columns(items, reviewers, labels, classes=group.options)
    model = DawidSkene(max_iter=config.max_iter, tol=config.tol,
                       correct_pseudocount=config.correct_pseudocount,
                       error_pseudocount=config.error_pseudocount,
                       prior_pseudocount=config.prior_pseudocount).fit(answers, gold=gold)
    # Σ over a reviewer's answers of the posterior of the label they gave: the model's
    # expected number of correct answers (exact on gold items, which are clamped).
    answered = model.probas_[answers.item_index, answers.label_index]
    expected = np.bincount(answers.reviewer_index, weights=answered,
                           minlength=answers.n_reviewers)
    counts = np.bincount(answers.reviewer_index, minlength=answers.n_reviewers)
    values: dict[str, Any] = dict(
        id=new_id("qm"), rubric_id=rubric_id, question_id=group.question_id,
        rubric_versions=list(group.versions), classes=list(group.options),
        reviewers=[str(r) for r in answers.reviewers],
        confusion=model.confusion_matrices_.tolist(), priors=model.priors_.tolist(),
        reviewer_answers=counts.tolist(), reviewer_expected_correct=expected.tolist(),
        n_items=answers.n_items, n_answers=answers.n_answers,
        n_gold_items=int(len(set(gold) & set(items))), n_iter=model.n_iter_,
        config=config.as_dict())
    # A fit every reader would refuse (a NaN from a degenerate fit) is never stored.
    check_stored_model(values, advice="the fit was not stored")
    row = AggregationModelRow(**values, method="dawid_skene",
                              converged=bool(model.converged_), fitted_by=actor,
                              fitted_at=now)
    session.add(row)
    session.flush()
    audit.append(session, actor=actor, action="quality.model_fit",
                 entity_type="quality_model", entity_id=row.id,
                 payload={"rubric": rubric_id, "question": group.question_id,
                          "versions": list(group.versions), "n_items": row.n_items,
                          "n_answers": row.n_answers, "n_gold_items": row.n_gold_items,
                          "n_iter": row.n_iter, "converged": row.converged,
                          "config": row.config})
    return row


def fit_question_models(session: Session, rubric_id: str,
                        config: ModelAggregationConfig = ModelAggregationConfig(), *,
                        actor: str = "quality", now: datetime | None = None
                        ) -> list[tuple[QuestionGroup, QuestionModel]]:
    """Fit (and store) a Dawid–Skene model for every answered single-choice question."""
    return _fit_all(session, rubric_id, _rubric_reviews(session, rubric_id), config,
                    actor=actor, now=now or utcnow())


def _fit_all(session: Session, rubric_id: str, reviews: Sequence[_Review],
             config: ModelAggregationConfig, *, actor: str, now: datetime
             ) -> list[tuple[QuestionGroup, QuestionModel]]:
    fitted = []
    for group in question_groups(session, rubric_id):
        row = _fit_group(session, rubric_id, group, reviews, config, actor=actor, now=now)
        if row is not None:
            model = _model_from_row(row)
            _remember(model)
            fitted.append((group, model))
    return fitted


def task_aggregator(session: Session, rubric_id: str, rubric_version: int) -> Aggregator:
    """The aggregator for tasks under ``rubric_id@rubric_version``: the latest stored
    model of each single-choice question whose fit covers that version, majority vote
    for the rest (and everywhere when nothing has been fitted)."""
    m = AggregationModelRow
    spec = cached_spec(session, rubric_id, rubric_version)
    if not any(q.kind in MODEL_KINDS for q in spec.questions):
        return majority_aggregator
    # The 20 newest fits of each question, in one round trip (every resolution asks).
    newest = (sa.select(m.id, m.question_id, m.rubric_versions,
                        sa.func.row_number().over(partition_by=m.question_id,
                                                  order_by=(m.fitted_at.desc(), m.id.desc()))
                        .label("n"))
              .where(m.rubric_id == rubric_id).subquery())
    recent = session.execute(sa.select(newest.c.id, newest.c.question_id,
                                       newest.c.rubric_versions)
                             .where(newest.c.n <= RECENT_FITS).order_by(newest.c.n)).all()
    chosen = aggregator_from_fits(spec, rubric_version, recent,
                                  lambda mid: _remember(_model_from_row(session.get_one(m, mid))))
    return chosen or majority_aggregator  # never None when models can be loaded


# How many of a question's newest fits are searched for one that covers a rubric version.
RECENT_FITS = 20


def aggregator_from_fits(spec: RubricSpec, rubric_version: int,
                         recent: Sequence[Sequence[Any]],
                         load: Callable[[str], QuestionModel] | None) -> Aggregator | None:
    """Choose from ``recent`` ``(model id, question id, rubric versions)`` rows, newest
    first, the model of each model-aggregated question; parsed models come from the
    cache, else from ``load`` (without one, a model not cached yet gives ``None``)."""
    models: dict[str, QuestionModel] = {}
    for q in spec.questions:
        if q.kind not in MODEL_KINDS:
            continue
        model_id = next((row[0] for row in recent if row[1] == q.id and rubric_version
                         in check_versions(row[0], spec.id, row[1], row[2])), None)
        if model_id is None:
            continue
        model = _MODELS.get(model_id)
        if model is None:
            if load is None:
                return None
            model = load(model_id)
        models[q.id] = model
    return ModelAggregator(models) if models else majority_aggregator


def settings_from_dict(data: Any, *, file: str | None = None,
                       line_of: Callable[[tuple[Any, ...]], int | None] | None = None
                       ) -> tuple[ModelAggregationConfig, CalibrationConfig]:
    """Both configurations from ``{"aggregation": {...}, "calibration": {..., "cusum":
    {...}}}`` (every key optional). Every problem is an :class:`~hilt.errors.InputError`
    naming ``file``, the line (with ``line_of``, which maps a key path such as
    ``("calibration", "window")`` to its line: :func:`hilt.quality._settings.
    read_settings_file`) and the field as ``section.key`` (e.g. ``calibration.window``):
    an unknown key, a section that is not a mapping, or a value of the wrong type or out
    of range."""
    from hilt.errors import InputError
    from hilt.quality._settings import SettingError
    from hilt.quality.trend import CusumConfig

    def error(message: str, *loc: Any) -> InputError:
        return InputError(message, file=file, field=".".join(map(str, loc)),
                          line=line_of(loc) if line_of is not None else None)

    data = {} if data is None else data
    if not isinstance(data, dict):
        raise InputError("settings must be a mapping", file=file, field="settings",
                         line=line_of(()) if line_of is not None else None)
    unknown = sorted(set(data) - {"aggregation", "calibration"}, key=str)
    if unknown:
        raise error(f"unknown section {unknown[0]!r}", unknown[0])

    def section(value: Any, loc: tuple[str, ...], allowed: set[str]) -> dict[str, Any]:
        value = {} if value is None else value
        if not isinstance(value, dict):
            raise error(f"must be a mapping of settings, not {value!r}", *loc)
        extra = sorted(set(value) - allowed, key=str)
        if extra:
            raise error(f"unknown setting {extra[0]!r} (known: "
                        f"{', '.join(sorted(allowed))})", *loc, extra[0])
        return dict(value)

    def build(loc: tuple[str, ...], make: Any, values: dict[str, Any]) -> Any:
        try:
            return make(**values)
        except SettingError as exc:
            raise error(exc.reason, *loc, exc.field) from None

    aggregation = build(("aggregation",), ModelAggregationConfig, section(
        data.get("aggregation"), ("aggregation",),
        set(ModelAggregationConfig.__dataclass_fields__)))
    calibration_values = section(data.get("calibration"), ("calibration",),
                                 set(CalibrationConfig.__dataclass_fields__))
    if ("min_window_answers" in calibration_values and "min_window_items" in calibration_values
            and calibration_values["min_window_answers"]
            != calibration_values["min_window_items"]):
        # The config itself cannot tell a written 20 from the default 20, so the
        # former name would silently win over an explicit min_window_items: 20.
        raise error("is the former name of min_window_items: give one of them",
                    "calibration", "min_window_answers")
    cusum = build(("calibration", "cusum"), CusumConfig, section(
        calibration_values.pop("cusum", None), ("calibration", "cusum"),
        set(CusumConfig.__dataclass_fields__)))
    calibration = build(("calibration",), CalibrationConfig, {**calibration_values,
                                                              "cusum": cusum})
    return aggregation, calibration


def latest_models(session: Session, rubric_id: str | None = None) -> list[dict[str, Any]]:
    """Summary of the latest fit of every rubric question (optionally of one rubric):
    settings, counts, convergence, each reviewer's estimated accuracy with the 95 %
    Wilson interval on its expected count of correct answers (``ci_low``/``ci_high``, as
    ``model_ci_low``/``model_ci_high`` in the reviewer report) and the class priors with
    the same kind of interval on their expected count of items (``priors_ci``, one
    ``[low, high]`` per class). Neither interval covers the model's own estimation
    error."""
    m = AggregationModelRow
    query = sa.select(m).order_by(m.fitted_at.desc(), m.id.desc())
    if rubric_id is not None:
        query = query.where(m.rubric_id == rubric_id)
    seen: set[tuple[str, str]] = set()
    out = []
    for row in session.execute(query).scalars():
        if (row.rubric_id, row.question_id) in seen:
            continue
        seen.add((row.rubric_id, row.question_id))
        fit = check_stored_model(row_values(row))
        out.append({
            "model_id": row.id, "rubric_id": row.rubric_id, "question_id": row.question_id,
            "rubric_versions": list(fit.rubric_versions), "method": row.method,
            "classes": list(fit.classes), "priors": fit.priors.tolist(),
            "n_items": fit.n_items, "n_answers": fit.n_answers,
            "n_gold_items": fit.n_gold_items, "n_iter": fit.n_iter,
            "converged": row.converged, "config": fit.config,
            "fitted_at": row.fitted_at.isoformat(), "fitted_by": row.fitted_by,
            "priors_ci": [list(expected_count_interval(p * fit.n_items, fit.n_items)[1:])
                          for p in fit.priors.tolist()],
            "reviewers": [_reviewer_estimate(r, n, e)
                          for r, n, e in zip(fit.reviewers, fit.reviewer_answers.tolist(),
                                             fit.reviewer_expected_correct.tolist(),
                                             strict=True)]})
    return sorted(out, key=lambda d: (d["rubric_id"], d["question_id"]))


def _reviewer_estimate(reviewer: str, answers: int, expected: float) -> dict[str, Any]:
    value, low, high = expected_count_interval(expected, answers)
    return {"reviewer": reviewer, "n_answers": answers, "estimated_accuracy": value,
            "ci_low": low, "ci_high": high}
