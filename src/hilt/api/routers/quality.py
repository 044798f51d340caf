"""Label quality over HTTP: the per-reviewer report, the fitted aggregation models, a
refresh (refit + label re-aggregation + status update) and a person's status decision.
Thin: every handler calls ``hilt.quality.store``.

Who may call: leads (and admins) everything; adjudicators may read the reviewer report
and the models.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import Field
from sqlalchemy.orm import Session

from hilt.access import Principal
from hilt.api.bodies import RequestBody
from hilt.api.deps import DB, allow
from hilt.api.schemas import declared
from hilt.api.schemas.quality import (
    AggregationModel,
    QualityRefresh,
    ReviewerQuality,
    StatusSet,
)

router = APIRouter(prefix="/v1/quality", tags=["quality"])


class RefreshIn(RequestBody):
    # An empty list would read as "not given" and refit every rubric.
    rubric_ids: list[str] | None = Field(
        default=None, min_length=1,
        description="rubrics to refit, at least one (left out: every rubric with reviews)")
    settings: dict[str, Any] = Field(
        default_factory=dict, description="'aggregation' and 'calibration' sections "
                                          "(docs/quality.md)")


class StatusIn(RequestBody):
    status: str
    reason: str = Field(min_length=1)


@router.get("/reviewers", responses=declared(list[ReviewerQuality]))
def reviewers(session: Session = DB,
              _: Principal = Depends(allow("lead", "adjudicator"))) -> list[dict[str, Any]]:
    from hilt.quality.store import reviewer_quality_report

    return reviewer_quality_report(session)


@router.get("/models", responses=declared(list[AggregationModel]))
def models(rubric_id: str | None = None, session: Session = DB,
           _: Principal = Depends(allow("lead", "adjudicator"))) -> list[dict[str, Any]]:
    from hilt.quality.store import latest_models

    return latest_models(session, rubric_id)


@router.post("/refresh", responses=declared(QualityRefresh))
def refresh(body: RefreshIn, session: Session = DB,
            who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    from hilt.quality.store import (
        refresh_all,
        refresh_labels,
        settings_from_dict,
        update_reviewer_statuses,
    )

    aggregation, calibration = settings_from_dict(body.settings)
    if body.rubric_ids:
        return {"rubrics": [refresh_labels(session, r, aggregation, actor=who.actor).as_dict()
                            for r in body.rubric_ids],
                "status_changes": update_reviewer_statuses(session, calibration,
                                                           actor=who.actor)}
    return refresh_all(session, config=aggregation, calibration=calibration, actor=who.actor)


@router.post("/reviewers/{reviewer_id}/status", responses=declared(StatusSet))
def set_status(reviewer_id: str, body: StatusIn, session: Session = DB,
               who: Principal = Depends(allow("lead"))) -> dict[str, str | None]:
    from hilt.quality.store import set_reviewer_status, status_note

    set_reviewer_status(session, reviewer_id, body.status, actor=who.actor,
                        reason=body.reason)
    return {"reviewer": reviewer_id, "status": body.status,
            "note": status_note(session, reviewer_id, body.status)}
