"""docs/review.md lists every audit action the review, access and quality code writes."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = [REPO / "src/hilt/review", REPO / "src/hilt/access.py", REPO / "src/hilt/quality"]
# what follows ``action=`` (or ``"action": ``) up to the end of the argument; the
# actions are the dotted string literals in it (one, or two in a conditional)
ARGUMENT = re.compile(r'(?:\baction=|"action": )([^,\n]+)')
LITERAL = re.compile(r'"([a-z_]+\.[a-z_]+)"')


def _written_actions() -> set[str]:
    found: set[str] = set()
    for root in SOURCES:
        for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
            for argument in ARGUMENT.findall(path.read_text(encoding="utf-8")):
                found |= set(LITERAL.findall(argument))
    return found


def test_the_audit_section_lists_every_action_written() -> None:
    doc = (REPO / "docs" / "review.md").read_text(encoding="utf-8")
    section = doc.split("## Audit", 1)[1].split("\n## ", 1)[0]
    actions = _written_actions()
    assert {"reviewer.create", "task.create_bridge", "review.submit",
            "reviewer.status"} <= actions  # the scan finds each way an action is written
    assert sorted(a for a in actions if f"`{a}`" not in section) == []
