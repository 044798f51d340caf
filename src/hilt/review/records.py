"""Plain records that the review stage hands to later stages.

A final label is the resolved answer to one rubric question for one reviewed item,
with the provenance of how it was reached. Data selection builds datasets from these,
so every field that lineage needs (event, reviews, adjudication, rubric and policy
versions) travels with the label.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

PROVENANCE_KINDS = ("unanimous", "majority", "model_aggregated", "adjudicated", "gold",
                    "cluster_propagated")
QUESTION_KINDS = ("single_choice", "multi_choice", "scale", "free_text", "preference",
                  "ranking", "rewrite")


@dataclass(frozen=True)
class FinalLabelRecord:
    """The resolved answer to one rubric question for one task's event.

    ``value`` by question kind: ``single_choice`` str; ``multi_choice`` list[str];
    ``scale`` float; ``free_text`` str; ``preference`` dict ``{"chosen": i,
    "rejected": j}`` (response indices); ``ranking`` list[int] (response indices, best
    first); ``rewrite`` str (the rewritten response text).

    A label copied to a near-duplicate (provenance ``cluster_propagated``) names where
    it was copied from: ``source_task_id`` (the reviewed task), ``source_event_id`` (that
    task's event) and ``source_consent`` (that event's consent scopes when the label
    was read). A copied text answer (``rewrite``, ``free_text``) is the source event's
    content, so selection asks for the source event's consent as well. ``None`` where
    the label was not copied, or where the reader did not say.
    """

    label_id: str
    event_id: str
    task_id: str
    rubric_id: str
    rubric_version: int
    question_id: str
    question_kind: str
    value: Any
    provenance: str
    confidence: float
    review_ids: tuple[str, ...]
    adjudication_id: str | None
    policy_version: str | None
    decided_at: datetime
    source_task_id: str | None = None
    source_event_id: str | None = None
    source_consent: frozenset[str] | None = None
