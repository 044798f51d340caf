"""Dataset versions over HTTP: build, list, show, diff, lineage, facts, revoke, forget.

A version's manifest, lineage and diff name its items (event ids, record keys that say
e.g. that a final label approved the response, the items a label filter removed and
why), so they are refused to a caller who is reviewing one of those items under a task
that still takes reviews (:mod:`hilt.review.blind`), and to an adjudicator when the
version holds a gold item or its manifest names one
(:func:`hilt.review.gold.refuse_if_gold`: gold items calibrate adjudicators, and ``GET
/v1/labels`` leaves gold labels out for them); the list of versions and their facts are
counts and stay open.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from pydantic import Field
from sqlalchemy.orm import Session

from hilt.access import Principal
from hilt.api.bodies import RequestBody
from hilt.api.deps import DB, allow, get_engine
from hilt.api.schemas import declared
from hilt.api.schemas.data import (
    BuildOut,
    DatasetFacts,
    Forgotten,
    Revoked,
    VersionDetail,
    VersionDiff,
    VersionLineage,
    VersionSummary,
)
from hilt.store.tables.datasets import DatasetRecordRow, DatasetVersionRow

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


def _refuse_if_closed(session: Session, who: Principal, row: DatasetVersionRow) -> None:
    """Refuse the manifest, lineage and diff of ``row`` to a caller reviewing one of its
    items (blind review), and to one from whom gold is withheld when its records hold a
    gold item or its manifest names one (a step's removed items, record keys) that was
    gold when the version was built: which step removed it, and why, follows from its
    gold labels."""
    from hilt.review.blind import refuse_if_reviewing_any
    from hilt.review.gold import refuse_if_gold

    r = DatasetRecordRow
    events = sa.select(r.event_id).where(r.version_id == row.id)
    what = f"dataset version {row.id}"
    refuse_if_reviewing_any(session, who.reviewer_id, events, what)
    refuse_if_gold(session, who.role, among=events, document=row.manifest,
                   written_at=row.created_at, what=what)


class BuildIn(RequestBody):
    spec: dict[str, Any] = Field(description="a selection spec (see docs/data.md)")


class RevokeIn(RequestBody):
    reason: str = Field(min_length=1)


class ForgetIn(RequestBody):
    subject_id: str = Field(min_length=1)
    reason: str = "right to be forgotten"


@router.post("", responses=declared(BuildOut))
def build(body: BuildIn, session: Session = DB,
          who: Principal = Depends(allow("lead", "service"))) -> dict[str, Any]:
    from hilt.data.build import build_version
    from hilt.data.spec import check_rubric_references, parse_spec

    spec = parse_spec(body.spec, file="request")
    # As ``hilt dataset build``: an unpublished rubric reference or a label_map key no
    # selected question gives is refused (422, naming the field) before anything is built.
    check_rubric_references(session, spec)
    result = build_version(session, spec, actor=who.actor)
    return {"version_id": result.version_id, "created": result.created,
            "records": result.record_count, "steps": result.steps,
            "revoked": result.revoked, "revoked_reason": result.revoked_reason}


@router.get("", responses=declared(list[VersionSummary]))
def list_versions(name: str | None = None, session: Session = DB,
                  _: Principal = Depends(allow("lead", "service", "adjudicator"))
                  ) -> list[dict[str, Any]]:
    from hilt.data import versions

    return [versions.summary(r) for r in versions.list_versions(session, name)]


@router.get("/{version_id}", responses=declared(VersionDetail))
def show(version_id: str, session: Session = DB,
         who: Principal = Depends(allow("lead", "service", "adjudicator"))
         ) -> dict[str, Any]:
    from hilt.data import versions

    row = versions.get_version(session, version_id)
    _refuse_if_closed(session, who, row)
    return {**versions.summary(row), "manifest": row.manifest}


@router.get("/{version_id}/lineage", responses=declared(VersionLineage))
def lineage(version_id: str, session: Session = DB,
            who: Principal = Depends(allow("lead", "service", "adjudicator"))
            ) -> dict[str, list[str]]:
    from hilt.data.versions import get_version
    from hilt.data.versions import lineage as version_lineage

    row = get_version(session, version_id)
    _refuse_if_closed(session, who, row)
    return version_lineage(session, row.id)


@router.get("/{version_id}/facts", responses=declared(DatasetFacts))
def facts(version_id: str, suite: list[str] | None = Query(default=None),
          session: Session = DB,
          _: Principal = Depends(allow("lead", "service"))) -> dict[str, Any]:
    from hilt.data.versions import dataset_facts

    return dataset_facts(session, version_id, suite).as_dict()


@router.get("/{a}/diff/{b}", responses=declared(VersionDiff))
def diff(a: str, b: str, session: Session = DB,
         who: Principal = Depends(allow("lead", "service", "adjudicator"))) -> dict[str, Any]:
    from hilt.data.versions import diff as diff_versions
    from hilt.data.versions import get_version

    for ref in (a, b):
        _refuse_if_closed(session, who, get_version(session, ref))
    return diff_versions(session, a, b)


@router.post("/{version_id}/revoke", responses=declared(Revoked))
def revoke(version_id: str, body: RevokeIn, request: Request,
           who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    """Revoke a version and flag its exports. The ``REVOKED.json`` markers are written
    once the revocation has committed, before the reply: it lists them
    (``markers_written``) and those that could not be written (``markers_failed``,
    ``path`` and ``error``; the revocation stands, and the same request writes them
    again), as ``hilt dataset revoke`` does."""
    from hilt.data import versions
    from hilt.store.db import transaction

    # A transaction of its own: the markers are only written after its commit.
    with transaction(get_engine(request)) as session:
        out = versions.summary(versions.revoke(session, version_id, reason=body.reason,
                                               actor=who.actor))
        written = versions.markers(session)  # filled in by the commit
    return {**out, **written.as_dict()}


@router.post("/forget-subject", responses=declared(Forgotten))
def forget(body: ForgetIn, request: Request, background: BackgroundTasks,
           who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    """Erase a subject's content and revoke the versions holding it. The records files
    of revoked versions are deleted after the erasure's transaction has committed. On
    PostgreSQL, an erasure that a concurrent claim or submit deadlocks with is rolled
    back whole and run again."""
    from hilt.data.forget import delete_files, erase_subject
    from hilt.store.db import in_transaction_retrying_deadlocks

    result = in_transaction_retrying_deadlocks(
        get_engine(request), lambda session: erase_subject(
            session, body.subject_id, actor=who.actor, reason=body.reason))
    background.add_task(delete_files, result, body.reason)
    return result.as_dict()
