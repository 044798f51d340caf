"""Drift over HTTP: alerts, running the monitors, bridge sets, compatibility decisions
and model lineage. Thin: every handler calls ``hilt.quality.drift``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import Field, field_validator
from sqlalchemy.orm import Session

from hilt.access import Principal
from hilt.api.bodies import RequestBody
from hilt.api.deps import DB, allow
from hilt.api.paging import PAGED, after_query, one_page
from hilt.api.schemas import declared
from hilt.api.schemas.drift import (
    BridgeCreated,
    BridgeStatus,
    Compatibility,
    DecisionRecorded,
    DriftRun,
    ModelLineage,
    StoredAlert,
)
from hilt.errors import InputError
from hilt.quality.drift.bridge import MAX_BRIDGE_OVERLAP, MAX_PER_STRATUM
from hilt.quality.drift.windows import MONITORS

router = APIRouter(prefix="/v1/drift", tags=["drift"])


def _version(what: str) -> Any:
    """A rubric version in the path: from 1 (0 names no published version) to the
    largest the store holds. A new ``Path`` for each parameter: FastAPI gives a shared
    one the first parameter's name as its alias, and the second would read its value."""
    return Path(ge=1, le=2**31 - 1, description=what)


class RunIn(RequestBody):
    now: datetime | None = None
    config: dict[str, Any] = Field(default_factory=dict,
                                   description="DriftConfig fields (docs/drift.md)")
    dry_run: bool = False

    @field_validator("now")
    @classmethod
    def _utc_if_naive(cls, value: datetime | None) -> datetime | None:
        # as the CLI reads --now: a time without a zone is UTC (windows are UTC-aligned)
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None \
            else value


class AckIn(RequestBody):
    note: str = ""


class BridgeIn(RequestBody):
    rubric_id: str
    old_version: int = Field(ge=1, le=2**31 - 1)
    new_version: int = Field(ge=1, le=2**31 - 1)
    question_id: str | None = None
    per_stratum: int = Field(default=30, ge=1, le=MAX_PER_STRATUM)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    pool: str = "default"
    overlap_k: int = Field(default=3, ge=1, le=MAX_BRIDGE_OVERLAP)
    change_threshold: float = Field(default=0.15, ge=0, lt=1)


class DecisionIn(RequestBody):
    rubric_id: str
    old_version: int = Field(ge=1, le=2**31 - 1)
    new_version: int = Field(ge=1, le=2**31 - 1)
    kind: Literal["mapping", "relabel", "accept", "withdraw"]
    reason: str = Field(min_length=1)
    question_id: str | None = None
    mapping: dict[str, str] | None = None
    bridge_id: str | None = None


def _config(data: dict[str, Any]) -> Any:
    from hilt.quality.drift.windows import DriftConfig

    unknown = sorted(set(data) - set(DriftConfig.__dataclass_fields__))
    if unknown:
        raise InputError(f"unknown settings {unknown}", field=f"config.{unknown[0]}")
    try:
        return DriftConfig.from_dict(data)
    except InputError as exc:
        # the setting lies inside the body's ``config``, as unknown settings are named
        raise InputError(exc.reason, field=f"config.{exc.field}" if exc.field
                         else "config") from None
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc), field="config") from None


@router.get("/alerts", responses=declared(list[StoredAlert], 200, PAGED))
def alerts(request: Request, response: Response,
           monitor: str | None = Query(None, description=f"one of {', '.join(MONITORS)}"),
           status: str | None = Query(None, description="open or acknowledged"),
           since: datetime | None = Query(None, description="only windows starting at or "
                                          "after this time (ISO 8601; UTC if no offset)"),
           limit: int = Query(200, ge=1, le=1000), after: str | None = after_query(),
           session: Session = DB,
           _: Principal = Depends(allow("lead", "adjudicator", "service"))
           ) -> list[dict[str, Any]]:
    """Stored alerts, newest window first (one window's by monitor, then id), ``limit``
    a page. When more follow, the ``X-Next-After`` header holds the cursor to pass as
    ``after`` for the next page and ``Link`` (``rel="next"``) that page's URL, the
    filters kept; neither is there on the last page. A cursor hilt did not give is a
    422 naming ``after``.

    A ``monitor`` or ``status`` that no alert can have is refused (422 naming it)
    rather than listing nothing."""
    from hilt.quality.drift.stored import ALERT_ORDER, alert_row_dict, alert_rows

    if monitor is not None and monitor not in MONITORS:
        raise InputError(f"unknown monitor {monitor!r}; one of: {', '.join(MONITORS)}",
                         field="monitor")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)  # as for /run: a time without a zone is UTC
    rows = alert_rows(session, monitor=monitor, status=status, since=since,
                      limit=limit + 1, after=after)
    return [alert_row_dict(r) for r in one_page(rows, limit, ALERT_ORDER, request,
                                                response)]


@router.post("/run", responses=declared(DriftRun))
def run(body: RunIn, session: Session = DB,
        who: Principal = Depends(allow("lead", "service"))) -> dict[str, Any]:
    """As ``hilt drift run``: the new alerts (all found with ``dry_run``) and the groups
    that had data but could not be tested (``untested``)."""
    from hilt.quality.drift.runner import monitor_run

    cfg = _config(body.config)
    # a `now` whose windows leave years 1..9999 is refused naming `now` (run_windows)
    result = monitor_run(session, body.now, config=cfg, actor=who.actor,
                         store=not body.dry_run)
    return {"stored": not body.dry_run, "alerts": [a.as_dict() for a in result.alerts],
            "untested": result.untested, "left_out": result.left_out}


@router.post("/alerts/{alert_id}/ack", responses=declared(StoredAlert))
def ack(alert_id: str, body: AckIn | None = None, session: Session = DB,
        who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    """Acknowledge an alert; the body (``{"note"}``) may be left out."""
    from hilt.quality.drift.stored import acknowledge

    return acknowledge(session, alert_id, actor=who.actor, note=(body or AckIn()).note)


@router.post("/bridges", responses=declared(BridgeCreated))
def create_bridge(body: BridgeIn, session: Session = DB,
                  who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    from hilt.quality.drift.bridge import create_bridge as create
    from hilt.quality.drift.transition import BridgeSettings

    return create(session, body.rubric_id, body.old_version, body.new_version,
                  actor=who.actor, question_id=body.question_id,
                  per_stratum=body.per_stratum, seed=body.seed, pool=body.pool,
                  overlap_k=body.overlap_k,
                  settings=BridgeSettings(change_threshold=body.change_threshold))


@router.get("/bridges/{bridge_id}", responses=declared(BridgeStatus))
def bridge(bridge_id: str, session: Session = DB,
           _: Principal = Depends(allow("lead", "adjudicator", "service"))) -> dict[str, Any]:
    from hilt.quality.drift.bridge import bridge_status

    return bridge_status(session, bridge_id)


@router.get("/compatibility/{rubric_id}/{old_version}/{new_version}",
            responses=declared(Compatibility))
def compatibility(rubric_id: str, old_version: int = _version("the earlier version"),
                  new_version: int = _version("the later version"), session: Session = DB,
                  _: Principal = Depends(allow("lead", "adjudicator", "service"))
                  ) -> dict[str, Any]:
    """As ``hilt drift compat``; a rubric or version not published is a 404."""
    from hilt.quality.drift.bridge import published_compatibility

    return published_compatibility(session, rubric_id, old_version, new_version).as_dict()


@router.post("/decisions", responses=declared(DecisionRecorded))
def decide(body: DecisionIn, session: Session = DB,
           who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    from hilt.quality.drift.bridge import record_decision

    return record_decision(session, body.rubric_id, body.old_version, body.new_version,
                           kind=body.kind, reason=body.reason, actor=who.actor,
                           question_id=body.question_id, mapping=body.mapping,
                           bridge_id=body.bridge_id)


@router.get("/lineage/{model_version}", responses=declared(ModelLineage))
def lineage(model_version: str,
            limit: int = Query(20, ge=0, le=1000, description="reviews, adjudications "
                               "and missing ids listed per dataset (0: counts only)"),
            session: Session = DB,
            _: Principal = Depends(allow("lead", "service"))) -> dict[str, Any]:
    from hilt.quality.drift.lineage import model_lineage

    return model_lineage(session, model_version, detail_limit=limit)
