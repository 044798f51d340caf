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
