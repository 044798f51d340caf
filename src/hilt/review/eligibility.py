"""Which work a reviewer may be given, by calibration status (one small rule to own).

Statuses are maintained by the quality stage: ``onboarding`` reviewers only receive
calibration (gold) items until they pass; ``calibrated`` and ``probation`` reviewers
receive everything (probation keeps gold in their mix, the quality stage watches them);
``suspended`` reviewers receive nothing.
"""

from __future__ import annotations

from typing import Literal

Eligibility = Literal["none", "gold_only", "all"]


def eligible_work(status: str, *, active: bool = True) -> Eligibility:
    """What the assignment step may hand to a reviewer with this status."""
    if not active or status == "suspended":
        return "none"
    if status == "onboarding":
        return "gold_only"
    return "all"
