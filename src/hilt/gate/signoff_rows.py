"""Whether the sign-offs a decision record carries were recorded, link by link.

A sign-off is recorded only by :func:`hilt.gate.store.sign_off`: it stores the
superseding record and a ``gate_signoffs`` row naming the record signed
(``decision_hash``) and the record that resulted (``resulting_hash``). A record rebuilt
with :func:`hilt.gate.decision.add_signoff` by anyone else is derived from its parent in
every other respect, so checking the chain's derivation alone would take a typed-in
sign-off for a real one.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.store.tables.gate import GateSignoffRow


def _entries(record: dict[str, Any]) -> list[Any]:
    facts = (record.get("inputs") or {}).get("facts") or {}
    return list(facts.get("signoffs") or [])


def carries_signoffs(record: dict[str, Any]) -> bool:
    return bool(_entries(record))


def unrecorded_link_signoffs(session: Session, parent: dict[str, Any],
                             child: dict[str, Any]) -> list[str]:
    """The sign-off ``child`` appends to ``parent``'s, unless a ``gate_signoffs`` row
    records it: same role and signer, signing ``parent`` into ``child``."""
    problems = []
    for entry in _entries(child)[len(_entries(parent)):]:
        role = entry.get("role") if isinstance(entry, dict) else None
        by = entry.get("by") if isinstance(entry, dict) else None
        found = session.execute(
            sa.select(GateSignoffRow.id).where(
                GateSignoffRow.decision_hash == parent.get("hash"),
                GateSignoffRow.resulting_hash == child.get("hash"),
                GateSignoffRow.role == role, GateSignoffRow.signed_by == by).limit(1)
        ).first()
        if found is None:
            problems.append(
                f"inputs.facts.signoffs: the sign-off as {role} by {by} was never recorded "
                f"(no gate_signoffs row signs {str(parent.get('hash'))[:12]} off into this "
                "record; sign-offs are recorded with `hilt gate signoff`)")
    return problems


def first_record_signoffs(record: dict[str, Any]) -> list[str]:
    """A record that supersedes none carries no sign-off: each comes with a record that
    supersedes the one signed."""
    entries = _entries(record)
    if not entries:
        return []
    names = ", ".join(f"{e.get('role')} by {e.get('by')}" if isinstance(e, dict)
                      else repr(e) for e in entries[:5])
    return [f"inputs.facts.signoffs: the record supersedes no decision but carries "
            f"sign-offs ({names}), which were never recorded (each sign-off comes with a "
            "record that supersedes the one signed: `hilt gate signoff`)"]
