"""Response bodies of the operations router: background jobs and webhooks (``/metrics``
and the review export are not JSON), and of ``/healthz``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, RootModel

from hilt.api.schemas import Schema, free_form, sometimes


class Health(Schema):
    status: Literal["ok", "unavailable"]
    version: str = Field(description="hilt's version")
    database: str = sometimes("503 only: what failed (the error's class, or timeout)")


class JobQueued(Schema):
    job_id: str
    status: Literal["queued"]


class JobLease(Schema):
    """Who holds a running job and until when."""

    worker: str
    host: str | None = Field(description="the machine the worker id names, if it names one")
    pid: int | None
    expires_at: datetime | None
    expired: bool = Field(description="whether the lease has ended (a long job's worker "
                                      "stopped reporting, or a short job runs past it)")


class Job(Schema):
    id: str
    kind: str
    params: dict[str, Any] = free_form("the job's parameters, by kind (docs/operations.md)")
    status: str = Field(description="queued, running, succeeded, failed or cancelled")
    attempts: int
    max_attempts: int
    progress: float = Field(description="0 to 1")
    progress_note: str | None
    cancel_requested: bool
    lease: JobLease | None = Field(description="null unless the job is running")
    result: dict[str, Any] | None = Field(description="what the job reported when it "
                                                      "succeeded, by kind (a free-form "
                                                      "object)")
    error: str | None
    workers: list[str] = Field(description="every worker that ran it")
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class Pruned(Schema):
    before: datetime = Field(description="what finished before this time was deleted")
    jobs: int = Field(description="finished jobs deleted")
    deliveries: int = Field(description="delivered webhook deliveries deleted")


class Subscribed(Schema):
    id: str
    secret: str = Field(description="the signing secret; shown this once")


class Subscription(Schema):
    id: str
    url: str
    event_types: list[str]
    description: str
    active: bool
    created_by: str
    created_at: datetime


class EventTypes(RootModel[dict[str, list[str]]]):
    """Webhook event type -> the audit actions that raise it."""


class Unsubscribed(Schema):
    id: str
    status: Literal["inactive"]


class Delivery(Schema):
    id: str
    subscription_id: str
    audit_seq: int = Field(description="the audit entry delivered")
    event_type: str
    status: str = Field(description="pending, delivered or failed")
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
