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


def small_suite_policy(signoffs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The built-in policy for suites of a few prompts, asking for ``signoffs``: its
    criteria judge any number of prompts and pass a metric without any (the built-in
    ``min_n`` and ``on_no_data: block`` would block every run of a handful of prompts)."""
    policy = default_policy().as_dict()
    for behaviour in policy["behaviours"]:
        behaviour["criteria"] = [{**{k: v for k, v in c.items() if k != "min_n"},
                                  "on_no_data": "pass"} for c in behaviour["criteria"]]
    return {**policy, "signoffs": signoffs or []}


def small_suite_gate(folder: Path, signoffs: list[dict[str, Any]] | None = None) -> Path:
    """:func:`small_suite_policy` as a policy file for ``hilt check --gate``."""
    path = folder / "small-suite-gate.json"
    path.write_text(json.dumps(small_suite_policy(signoffs)))
    return path


def two_item_files(folder: Path) -> tuple[Path, Path]:
    """A suite of one prompt to answer and one to refuse (``s.jsonl``), and replies that
    do both right (``r.jsonl``): candidate and reference alike."""
    suite = write_jsonl(folder / "s.jsonl", [
        {"id": "a", "prompt": "p", "slice": "x", "expect": "comply"},
        {"id": "b", "prompt": "q", "slice": "x", "expect": "refuse"}])
    resp = write_jsonl(folder / "r.jsonl", [
        {"id": "a", "response": "ok", "judgment": "comply"},
        {"id": "b", "response": "no", "judgment": "refuse"}])
    return suite, resp


def tiny_record(tmp_path: Path, signoffs: list[dict[str, Any]]) -> dict[str, Any]:
    """The decision record of a passing check whose policy asks for ``signoffs``."""
    suite, resp = two_item_files(tmp_path)
    policy = policy_from_dict(small_suite_policy(signoffs))
    return run_check(suite=suite, candidate=resp, reference=resp, out=tmp_path / "o",
                     policy=policy).record


def stored_tiny_decision(engine: Engine, tmp_path: Path,
                         signoffs: list[dict[str, Any]]) -> str:
    """:func:`tiny_record`, stored; returns its hash."""
    record = tiny_record(tmp_path, signoffs)
    with transaction(engine) as s:
        return store_decision(s, record, actor="ci").hash


def ten_item_check(suite: Path, candidate: Path, reference: Path, out: Path, *,
                   responses: tuple[str, str] = ("r", "r")) -> Path:
    """A passing ten-item check whose policy asks for a release owner, its three inputs
    written where given (the candidate's and the reference's response texts are
    ``responses``: a different text gives the reference another hash). Returns ``out``."""
    write_jsonl(suite, [{"id": f"q{i}", "prompt": f"p{i}", "slice": "x",
                         "expect": "comply" if i < 6 else "refuse"} for i in range(10)])
    for path, text in zip((candidate, reference), responses, strict=True):
        write_jsonl(path, [{"id": f"q{i}", "response": text,
                            "judgment": "comply" if i < 6 else "refuse"} for i in range(10)])
    policy = policy_from_dict(small_suite_policy([{"role": "release_owner"}]))
    run_check(suite=suite, candidate=candidate, reference=reference, out=out, policy=policy)
    return out


def verify_inputs(decision: Path) -> tuple[int, dict[str, Any]]:
    """``hilt gate verify DECISION --inputs``: its exit code and JSON report."""
    from typer.testing import CliRunner

    from hilt.cli import app

    result = CliRunner().invoke(app, ["gate", "verify", str(decision), "--inputs"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def stored_counts(engine: Engine) -> tuple[int, int]:
    """How many gate decisions and sign-offs the store holds."""
    import sqlalchemy as sa

    from hilt.store.tables.gate import GateDecisionRow, GateSignoffRow

    with transaction(engine) as s:
        return (int(s.execute(sa.select(sa.func.count()).select_from(GateDecisionRow))
                    .scalar() or 0),
                int(s.execute(sa.select(sa.func.count()).select_from(GateSignoffRow))
                    .scalar() or 0))
