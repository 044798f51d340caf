"""The baseline server of ``benchmarks.http``: a naive review queue over HTTP.

The textbook way to serve "give me the next task" from a web app: FastAPI and
SQLAlchemy on the same database and tables as hilt, a claim that selects the best open
task and then decrements its free slots in the same transaction, without row locks
(``benchmarks.queue._naive_claim``), and a submit through hilt's own
:func:`hilt.review.work.submit`, the call behind hilt's submit endpoint (on PostgreSQL
its one-statement ``pg_fast``/``pg_resolve`` path), so only the claim differs between
the two servers. Tokens are checked
with hilt's ``authenticate`` and the same per-process cache as hilt's API. It speaks the
two endpoints the benchmark's reviewers call, with hilt's request and response shapes:

    POST /v1/queue/next                  -> {"task": {"task_id": ...} | null}
    POST /v1/queue/tasks/{task_id}/submit {"answers": {...}} -> {"review_id": ...}

Run by ``benchmarks.http`` as ``uvicorn benchmarks.naive_http:app`` with
``HILT_DATABASE_URL`` set; not part of hilt.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from fastapi import Body, FastAPI, Header, HTTPException

# The aggregation modules load lazily on a task's k-th review; imported here so that
# no measured request pays for the import (benchmarks.http also runs an untimed
# warm-up phase on both servers).
import hilt.quality.aggregation_store  # noqa: F401
import hilt.quality.store  # noqa: F401
import hilt.review.pg_resolve  # noqa: F401
from benchmarks.queue import _naive_claim
from hilt.access import authenticate, recent_principal, remember_principal
from hilt.review import work
from hilt.review.reviews import Submission
from hilt.store.db import make_engine, transaction
from hilt.store.tables.base import utcnow

app = FastAPI()
_engine = make_engine(os.environ.get("HILT_DATABASE_URL", "sqlite:///.hilt/hilt.db"))


def _reviewer(authorization: str | None) -> str:
    secret = (authorization or "").removeprefix("Bearer ").strip()
    principal = recent_principal(secret)
    if principal is None:
        with transaction(_engine) as session:
            principal = authenticate(session, secret)
        if principal is None or principal.reviewer_id is None:
            raise HTTPException(401, "unknown token")
        remember_principal(secret, principal)
    assert principal.reviewer_id is not None
    return principal.reviewer_id


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/queue/next")
def next_task(authorization: str | None = Header(None)) -> dict[str, Any]:
    reviewer = _reviewer(authorization)
    try:
        with transaction(_engine) as session:
            task_id = _naive_claim(session, reviewer, utcnow())
    except sa.exc.DBAPIError as exc:  # e.g. a deadlock the unlocked claim walked into
        raise HTTPException(503, f"claim failed: {type(exc.orig).__name__}") from None
    return {"task": None if task_id is None else {"task_id": task_id}}


@app.post("/v1/queue/tasks/{task_id}/submit")
def submit(task_id: str, body: dict[str, Any] = Body(...),
           authorization: str | None = Header(None)) -> dict[str, Any]:
    reviewer = _reviewer(authorization)
    result = work.submit(_engine, task_id, reviewer, Submission(body["answers"]))
    return {"review_id": result.review_id}
