"""A two-item check whose only possible reason to block is a missing sign-off."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from hilt.evals.check import run_check
from hilt.gate.policy import default_policy, policy_from_dict
from hilt.gate.store import store_decision
from hilt.store.db import transaction


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tiny_record(tmp_path: Path, signoffs: list[dict[str, Any]]) -> dict[str, Any]:
    """The decision record of a passing check whose policy asks for ``signoffs``."""
    suite = write_jsonl(tmp_path / "s.jsonl", [
        {"id": "a", "prompt": "p", "slice": "x", "expect": "comply"},
        {"id": "b", "prompt": "q", "slice": "x", "expect": "refuse"}])
    resp = write_jsonl(tmp_path / "r.jsonl", [
        {"id": "a", "response": "ok", "judgment": "comply"},
        {"id": "b", "response": "no", "judgment": "refuse"}])
    policy = policy_from_dict({**default_policy().as_dict(), "signoffs": signoffs})
    return run_check(suite=suite, candidate=resp, reference=resp, out=tmp_path / "o",
                     policy=policy).record


def stored_tiny_decision(engine: Engine, tmp_path: Path,
                         signoffs: list[dict[str, Any]]) -> str:
    """:func:`tiny_record`, stored; returns its hash."""
    record = tiny_record(tmp_path, signoffs)
    with transaction(engine) as s:
        return store_decision(s, record, actor="ci").hash
