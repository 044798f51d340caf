"""Response bodies of the datasets router (``/v1/datasets``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from hilt.api.schemas import Schema, free_form, sometimes


class BuildStep(Schema):
    """One selection step of a build: what came in, what it removed and why."""

    step: str
    input: int
    removed: int
    output: int
    reasons: dict[str, int] = Field(description="reason -> items removed for it")
    removed_ids: dict[str, list[str]] = Field(description="reason -> the items removed")
    labels: dict[str, int] = sometimes("label steps only: the labels in, removed and out")
    notes: dict[str, Any] = sometimes("what the step adds to say, when it has something "
                                      "(a free-form object)")


class BuildOut(Schema):
    version_id: str
    created: bool = Field(description="false when an existing version has these records "
                                      "(its id is their hash) and was reused")
    records: int
    steps: list[BuildStep] = Field(description="the steps of this build (a reused "
                                               "version's manifest may list others)")
    revoked: bool = Field(description="a reused version may have been revoked")
    revoked_reason: str | None


class VersionSummary(Schema):
    id: str = Field(description="the hash of the version's records")
    name: str
    kind: str
    records: int
    created_at: datetime
    created_by: str
    code_version: str
    revoked: bool
    revoked_reason: str | None


class VersionDetail(VersionSummary):
    manifest: dict[str, Any] = free_form("the version's manifest: its spec, steps and counts "
                                         "(docs/data.md)")


class VersionLineage(Schema):
    """The ids a version's records refer to, each list sorted."""

    event_ids: list[str]
    label_ids: list[str]
    review_ids: list[str]
    adjudication_ids: list[str]
    rubrics: list[str] = Field(description="ID@VERSION")
    policy_versions: list[str]


class ContaminatingItem(Schema):
    record_key: str
    suite_id: str
    item_id: str


class DatasetFacts(Schema):
    version_id: str
    records: int
    consented: bool = Field(description="every event still consents to training and is not "
                                        "erased")
    events_without_consent: list[str]
    erased_events: list[str]
    revoked: bool
    revoked_reason: str | None
    contaminated: bool | None = Field(description="null when the records files are gone, "
                                                  "so it cannot be checked")
    contaminating_items: list[ContaminatingItem]
    suites_checked: list[str]


class VersionDiff(Schema):
    a: str
    b: str
    added: list[str] = Field(description="record keys in b only")
    removed: list[str] = Field(description="record keys in a only")
    relabelled: list[str] = Field(description="record keys in both, with other content")
    unchanged: int


class FileProblem(Schema):
    path: str
    error: str


class Revoked(VersionSummary):
    markers_written: list[str] = Field(description="REVOKED.json markers written")
    markers_failed: list[FileProblem] = Field(description="markers that could not be "
                                                          "written (the request writes them "
                                                          "again)")


class Forgotten(Schema):
    subject_sha256: str
    events_erased: int
    review_content_erased: dict[str, int]
    versions_revoked: list[str]
    exports_flagged: list[str]
    files_to_delete: list[str] = Field(description="deleted after the reply")
    files_deleted: list[str]
    files_failed: list[FileProblem]
    markers_failed: list[FileProblem]
