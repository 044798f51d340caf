"""Which work a reviewer may be given, by calibration status (one small rule to own).

Statuses are maintained by the quality stage (the status machine of
:mod:`hilt.quality.calibration`, written to ``reviewers.status`` by
:func:`hilt.quality.store.update_reviewer_statuses`): ``onboarding`` reviewers only
receive calibration (gold) items until the status machine sees them pass a calibration
set; ``calibrated`` and ``probation`` reviewers (those whose
``ReviewerStatus.may_take_production_tasks`` holds; probation keeps gold in their mix
while the quality stage watches them) receive everything; ``suspended`` reviewers,
inactive ones and any status the quality stage does not define receive nothing.

The status names are spelled out here rather than imported so that the claim path does
not load the statistics stack; a test checks they match ``ReviewerStatus``.
"""

from __future__ import annotations

from typing import Literal

Eligibility = Literal["none", "gold_only", "all"]

GOLD_ONLY_STATUSES = frozenset({"onboarding"})
PRODUCTION_STATUSES = frozenset({"calibrated", "probation"})


def eligible_work(status: str, *, active: bool = True) -> Eligibility:
    """What the assignment step may hand to a reviewer with this status."""
    if not active:
        return "none"
    if status in GOLD_ONLY_STATUSES:
        return "gold_only"
    return "all" if status in PRODUCTION_STATUSES else "none"
