"""Release gate: verify a decision, sign it off, show it, print the default policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hilt.config import database_url

gate_app = typer.Typer(help="Release-gate decisions: verify, sign off, show.",
                       no_args_is_help=True)

DbOption = Annotated[str | None, typer.Option("--db", help="database URL "
                     "(default: $HILT_DATABASE_URL or sqlite:///.hilt/hilt.db)")]
DecisionArg = Annotated[str, typer.Argument(
    help="a decision.json file, or a stored decision's hash (or a unique prefix of at "
         "least 8 characters)")]


def _engine(db: str | None) -> Any:
    from hilt.store.db import make_engine

    return make_engine(db or database_url())


def _echo_json(value: object) -> None:
    typer.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def _load(decision: str, db: str | None) -> dict[str, Any]:
    from hilt.errors import InputError

    path = Path(decision)
    if path.is_file():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"not a JSON decision record ({exc})", file=str(path)) from exc
        if not isinstance(record, dict):
            raise InputError("not a JSON decision record", file=str(path))
        return record
    from hilt.gate.store import get_decision
    from hilt.store.db import transaction

    with transaction(_engine(db)) as session:
        return dict(get_decision(session, decision).record)


@gate_app.command("verify")
def verify(decision: DecisionArg, db: DbOption = None) -> None:
    """Recompute the decision from its stored inputs; exit 0 if it agrees, 1 if not."""
    from hilt.gate.decision import verify as verify_record

    report = verify_record(_load(decision, db))
    _echo_json(report.as_dict())
    raise typer.Exit(0 if report.ok else 1)


@gate_app.command("signoff")
def signoff(decision: DecisionArg,
            role: Annotated[str, typer.Option(help="the role signing, e.g. release_owner")],
            by: Annotated[str, typer.Option(
                help="who signs: a registered, active lead or admin identity")],
            note: Annotated[str, typer.Option(help="why, kept in the record")] = "",
            out: Annotated[Path | None, typer.Option(help="also write the new record "
                                                          "here")] = None,
            db: DbOption = None) -> None:
    """Sign off the newest record of a decision; prints the superseding record's outcome.

    A decision given as a file is stored first (after verification). Exit 0 if the gate
    now passes, 1 if it still blocks.
    """
    from hilt.evals.report import to_json, write_outputs_atomically
    from hilt.gate.store import ConcurrentWrite, sign_off, store_decision
    from hilt.store.db import transaction

    record = _load(decision, db) if Path(decision).is_file() else None
    engine = _engine(db)
    for attempt in range(3):
        try:
            with transaction(engine) as session:
                ref = store_decision(session, record, actor=by).hash if record else decision
                row = sign_off(session, ref, role=role, signed_by=by, note=note)
                new_record = dict(row.record)
            break
        except ConcurrentWrite:
            # two sign-offs stored the same decision file at once: the retry finds it
            # stored and builds on the newest record
            if attempt == 2:
                raise
    if out is not None:
        write_outputs_atomically(out.parent, {out.name: to_json(new_record)})
    _echo_json({"decision": new_record["hash"], "supersedes": new_record["supersedes"],
                "outcome": new_record["outcome"],
                "reasons": new_record["decision"]["reasons"]})
    raise typer.Exit(0 if new_record["outcome"] == "pass" else 1)


@gate_app.command("update")
def update(out: Annotated[Path, typer.Argument(help="the check's output folder "
                                                    "(holds decision.json)")],
           actor: Annotated[str, typer.Option(help="who folds the labels in")] = "cli",
           db: DbOption = None) -> None:
    """Fold returned human-review labels of the decision's review sample into it.

    Builds and stores a superseding record (human judgments win over automatic ones,
    sample-based rates re-estimated) and rewrites report.json, report.html and
    decision.json in the folder. Exit 0 if the gate now passes, 1 if it blocks.
    """
    from hilt.evals.review_loop import fold_review_labels, write_outputs
    from hilt.gate.store import latest
    from hilt.store.db import transaction

    record = _load(str(out / "decision.json"), db)
    with transaction(_engine(db)) as session:
        new_record = fold_review_labels(session, record, actor=actor)
        if new_record is None:
            new_record = dict(latest(session, record["hash"]).record)
    if new_record["hash"] != record["hash"]:
        write_outputs(new_record, out)
    summary = new_record["metrics"].get("review_sample") or {}
    _echo_json({"decision": new_record["hash"], "supersedes": new_record["supersedes"],
                "outcome": new_record["outcome"], "reasons": new_record["decision"]["reasons"],
                "review": {k: summary.get(k) for k in ("sampled", "returned")}})
    raise typer.Exit(0 if new_record["outcome"] == "pass" else 1)


@gate_app.command("show")
def show(decision: DecisionArg,
         full: Annotated[bool, typer.Option("--full", help="print the whole record")] = False,
         db: DbOption = None) -> None:
    """Print a decision: outcome, reasons, criteria, sign-offs, versions, card gaps."""
    record = _load(decision, db)
    if full:
        _echo_json(record)
        return
    d = record["decision"]
    _echo_json({"hash": record["hash"], "outcome": record["outcome"],
                "supersedes": record.get("supersedes"), "created_at": record["created_at"],
                "reasons": d["reasons"], "versions": record["inputs"]["versions"],
                "criteria": [{k: c[k] for k in ("id", "slice", "status", "numbers")}
                             for c in d["criteria"]],
                "signoffs": d["signoffs"]["present"],
                "lineage": d["lineage"],
                "contract_card_unanswered": d["contract_card"]["unanswered"]})


@gate_app.command("list")
def list_(limit: Annotated[int, typer.Option(help="at most this many decisions")] = 20,
          db: DbOption = None) -> None:
    """Stored decisions, newest first."""
    from hilt.gate.store import list_decisions
    from hilt.store.db import transaction

    with transaction(_engine(db)) as session:
        _echo_json([{"hash": r.hash, "outcome": r.outcome, "created_at": r.created_at,
                     "policy": f"{r.policy_id}@{r.policy_version}",
                     "candidate": r.candidate_id, "reference": r.reference_id,
                     "supersedes": r.supersedes} for r in list_decisions(session, limit)])


@gate_app.command("default-policy")
def default_policy_cmd() -> None:
    """Print the built-in policy (contract 3) as YAML, a starting point for your own."""
    import yaml

    from hilt.gate.policy import default_policy

    typer.echo(yaml.safe_dump(default_policy().as_dict(), sort_keys=False,
                              allow_unicode=True))


def register(app: typer.Typer) -> None:
    """Add the ``hilt gate`` group."""
    app.add_typer(gate_app, name="gate")
