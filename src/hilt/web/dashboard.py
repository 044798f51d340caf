"""What the lead dashboard shows, gathered from the store.

Only reads and reshaping live here: the statistics come from the pure functions of
:mod:`hilt.quality` (Wilson intervals for gold accuracy, bootstrap intervals for
agreement), queue counts from :mod:`hilt.review.views`, dataset versions from
:mod:`hilt.data.versions` and gate decisions from :mod:`hilt.gate.store`.

Drift alerts come from :func:`hilt.quality.drift.runner.list_alerts`; the model registry
is read through an optional stage function, ``hilt.train.registry.list_models(session)``
returning a list of dicts. When a stage does not provide its function, the dashboard says
so instead of showing an empty table that would look like "nothing to report".
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.canonical import canonical_json
from hilt.data.versions import list_versions, summary
from hilt.gate.store import decision_summary, list_decisions
from hilt.quality import measure_agreement
from hilt.quality.answers import Answers
from hilt.quality.stored_model import StoredModelError
from hilt.review.rubric_spec import AGGREGATED_KINDS
from hilt.review.rubrics import rubric_spec
from hilt.review.views import queue_stats
from hilt.store.tables.base import UTCDateTime
from hilt.store.tables.review import ReviewRow, ReviewTaskRow

# Bounded work per page view: the newest reviews only, and a modest bootstrap.
MAX_REVIEWS = 20_000
AGREEMENT_RESAMPLES = 300
MAX_ALERTS = 50
MAX_MODELS = 50
MAX_DATASETS = 25
MAX_GATE = 25
OPEN_STATUSES = ("open", "clustered", "needs_adjudication")


def queue_overview(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Per pool: tasks by status, how many waiting tasks are past their SLA, and since
    when the latest of them is late.

    An escalated task holds a later deadline than the one it missed, so it counts as
    past its SLA by ``sla_breached_at`` (the first deadline it missed), not by its
    current deadline."""
    t = ReviewTaskRow
    counts = queue_stats(session)
    overdue = sa.or_(t.sla_breached_at.is_not(None), t.sla_due_at < now)
    missed = sa.type_coerce(sa.func.min(sa.case(
        (overdue, sa.func.coalesce(t.sla_breached_at, t.sla_due_at)))), UTCDateTime())
    waiting = session.execute(
        sa.select(t.pool, sa.func.count(), sa.func.min(t.sla_due_at),
                  sa.func.sum(sa.case((overdue, 1), else_=0)), missed)
        .where(t.status.in_(OPEN_STATUSES), t.is_gold.is_(False)).group_by(t.pool)).all()
    sla = {pool: (n, due, late or 0, since) for pool, n, due, late, since in waiting}
    out = []
    for pool in sorted(set(counts) | set(sla)):
        n, due, late, since = sla.get(pool, (0, None, 0, None))
        out.append({"pool": pool, "by_status": counts.get(pool, {}), "waiting": n,
                    "overdue": late, "late_since": since, "next_due": due})
    return out


def _recent_reviews(session: Session) -> list[Any]:
    r, t = ReviewRow, ReviewTaskRow
    return list(session.execute(
        sa.select(r.reviewer_id, r.task_id, r.rubric_id, r.rubric_version, r.answers,
                  r.is_gold, r.submitted_at, t.gold_answers)
        .join(t, t.id == r.task_id).order_by(r.submitted_at.desc())
        .limit(MAX_REVIEWS + 1)).all())  # one more: whether older ones are left out


def calibration(session: Session) -> list[dict[str, Any]]:
    """Per-reviewer gold accuracy (Wilson interval counted per gold item: the page shows
    ``gold_correct``/``n_gold`` answers beside ``n_gold_items``), status and trend alarm:
    the rows of ``hilt quality reviewers``
    (:func:`hilt.quality.reviewer_store.reviewer_quality_report`), so the page and the CLI
    never disagree (a lead's manual status change included)."""
    from hilt.quality.reviewer_store import reviewer_quality_report

    return [{**row, "ci_low": row["gold_ci_low"], "ci_high": row["gold_ci_high"]}
            for row in reviewer_quality_report(session)
            if row["n_answers"] or row["role"] in ("reviewer", "adjudicator")]


@dataclass
class _Long:
    items: list[str] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)


def agreement(session: Session, rows: list[Any]) -> list[dict[str, Any]]:
    """Krippendorff's alpha per rubric version and question over non-gold items, with a
    bootstrap interval over items (nominal for choices, ordinal for scales). A checklist
    a reviewer left unticked is their answer ``[]``, as in resolution and the metrics
    snapshot (:func:`hilt.quality.reviewer_store.with_unticked`)."""
    from hilt.quality.reviewer_store import checklist_ids, with_unticked

    groups: dict[tuple[str, int, str], _Long] = defaultdict(_Long)
    checklists: dict[tuple[str, int], frozenset[str]] = {}
    for row in rows:
        if row.is_gold:
            continue
        rubric = (row.rubric_id, row.rubric_version)
        if rubric not in checklists:
            try:
                checklists[rubric] = checklist_ids(session, *rubric)
            except (KeyError, LookupError):
                checklists[rubric] = frozenset()  # an unknown rubric is skipped below
        for qid, value in with_unticked(row.answers, checklists[rubric]).items():
            g = groups[(row.rubric_id, row.rubric_version, qid)]
            g.items.append(row.task_id)
            g.reviewers.append(row.reviewer_id)
            g.labels.append(value)
    out = []
    for (rubric_id, version, qid), g in sorted(groups.items()):
        try:
            kind = rubric_spec(session, rubric_id, version).question(qid).kind
        except (KeyError, LookupError):
            continue
        if kind not in AGGREGATED_KINDS or len(set(g.items)) == len(g.items):
            continue  # free text is not voted on; single answers cannot agree
        scale = kind == "scale"
        labels = [float(v) for v in g.labels] if scale else [canonical_json(v)
                                                                 for v in g.labels]
        result = measure_agreement(Answers.from_columns(g.items, g.reviewers, labels),
                                   "krippendorff", "ordinal" if scale else "nominal",
                                   n_resamples=AGREEMENT_RESAMPLES)
        out.append({"rubric": f"{rubric_id}@{version}", "question": qid, "kind": kind,
                    **result.as_dict()})
    return out


def optional_listing(module: str, function: str, session: Session, **kwargs: Any
                     ) -> tuple[bool, list[dict[str, Any]]]:
    """``(available, rows)`` from an optional stage function."""
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return False, []
        raise
    listing = getattr(found, function, None)
    if listing is None:
        return False, []
    return True, list(listing(session, **kwargs))


def _capped(rows: list[Any], cap: int) -> tuple[list[Any], bool]:
    """The first ``cap`` of ``rows`` (read with a limit of ``cap + 1``) and whether more
    exist, so that a capped table can say so."""
    return rows[:cap], len(rows) > cap


def lead_dashboard(session: Session, now: datetime) -> dict[str, Any]:
    rows, reviews_capped = _capped(_recent_reviews(session), MAX_REVIEWS)
    drift_ok, found = optional_listing("hilt.quality.drift.runner", "list_alerts", session,
                                       limit=MAX_ALERTS + 1)
    drift, drift_more = _capped(found, MAX_ALERTS)
    models_ok, found = optional_listing("hilt.train.registry", "list_models", session,
                                        limit=MAX_MODELS + 1)
    models, models_more = _capped(found, MAX_MODELS)
    datasets = list_versions(session)
    gate, gate_more = _capped(list_decisions(session, limit=MAX_GATE + 1), MAX_GATE)
    # A stored reviewer model that cannot be used (edited by hand, written by an older
    # version) costs the calibration table only: the rest of the page still serves the
    # lead, and the section says what to refit.
    calibration_error = None
    try:
        calibration_rows = calibration(session)
    except StoredModelError as error:
        calibration_rows, calibration_error = [], str(error)
    return {
        "queue": queue_overview(session, now),
        "calibration": calibration_rows, "calibration_error": calibration_error,
        "agreement": agreement(session, rows),
        "reviews_considered": len(rows), "max_reviews": MAX_REVIEWS,
        "reviews_capped": reviews_capped,
        "drift_available": drift_ok, "drift": drift, "drift_more": drift_more,
        "models_available": models_ok, "models": models, "models_more": models_more,
        "datasets": [summary(v) for v in datasets[:MAX_DATASETS]],
        "datasets_total": len(datasets),
        # read from each record, not its row's columns (which only repeat it)
        "gate": [decision_summary(d) for d in gate], "gate_more": gate_more,
    }
