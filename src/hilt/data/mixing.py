"""Refusing to mix rubric versions whose labels mean different things.

A dataset version may hold labels decided under several versions of one rubric. When a
bridge re-review showed that the versions label the same items differently (the rubric
drift stage's transition matrix, :func:`hilt.quality.drift.bridge.bridge_compatibility`)
and no mapping, relabelling or acceptance was recorded, mixing them would silently
train on two policies at once. :func:`check_rubric_mixing` asks the drift stage's pure
:func:`hilt.quality.drift.transition.check_mixable` about every rubric version present
in the selected records and raises an error naming the versions; versions never
bridged (status ``unknown``) are allowed and listed in the manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.orm import Session

from hilt.data.records import Example
from hilt.errors import InputError

CompatLookup = Callable[[str, int, int], Any]


def rubric_versions(examples: Iterable[Example]) -> list[str]:
    """``rubric@version`` of every label behind the examples."""
    return sorted({f"{lb.rubric_id}@{lb.rubric_version}" for ex in examples
                   for lb in ex.labels})


def default_compat_lookup(session: Session) -> CompatLookup | None:
    try:
        from hilt.quality.drift.bridge import compat_lookup
    except ImportError:  # a deployment without the drift stage has no bridges
        return None
    return compat_lookup(session)


def check_rubric_mixing(examples: Iterable[Example], lookup: CompatLookup | None
                        ) -> dict[str, Any]:
    """Raise :class:`InputError` when the examples mix incompatible rubric versions;
    otherwise return what was checked (for the manifest)."""
    versions = rubric_versions(examples)
    if lookup is None:
        return {"rubric_versions": versions, "checked": False}
    from hilt.quality.drift.transition import check_mixable

    problems = check_mixable(versions, lookup, allow_unknown=False)
    blocking = [p for p in problems if p["status"] != "unknown"]
    if blocking:
        listed = "; ".join(f"{p['rubric_id']}@{p['old_version']} with "
                           f"{p['rubric_id']}@{p['new_version']} ({p['status']}: "
                           f"{p['reason']})" for p in blocking)
        raise InputError(f"the selected labels mix rubric versions whose bridge shows "
                         f"incompatible labels: {listed}; {blocking[0]['fix']}, or restrict "
                         "labels.rubric_versions", field="labels.rubric_versions")
    return {"rubric_versions": versions, "checked": True,
            "unbridged": [f"{p['rubric_id']}@{p['old_version']}->@{p['new_version']}"
                          for p in problems]}
