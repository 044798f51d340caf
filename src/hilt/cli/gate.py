"""Release gate: verify a decision, sign it off, show it, print the default policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hilt.cli.core import DbOption, echo_json, options_named
from hilt.cli.paging import AFTER_NAMED, AfterOption, note_more
from hilt.config import database_url

gate_app = typer.Typer(help="Release-gate decisions: verify, sign off, show.",
                       no_args_is_help=True)

DecisionArg = Annotated[str, typer.Argument(
    help="a decision.json file, a check's output folder holding one, or a stored "
         "decision's hash (or a unique prefix of at least 8 characters)")]


def _engine(db: str | None) -> Any:
    from hilt.store.db import make_engine

    return make_engine(db or database_url())


def _echo_json(value: object) -> None:
    echo_json(value)  # strict JSON, times in ISO 8601 (hilt.cli.core.echo_json)


RECORD_KEYS = {"schema": str, "hash": str, "inputs": dict, "decision": dict, "outcome": str}


def _check_shape(record: Any, file: str) -> dict[str, Any]:
    """The top of a decision record, so that a stray JSON file is bad input (exit 2)
    rather than a KeyError; what lies below is for ``verify`` to judge."""
    from hilt.errors import InputError

    if not isinstance(record, dict):
        raise InputError("not a JSON decision record", file=file)
    for key, kind in RECORD_KEYS.items():
        if not isinstance(record.get(key), kind):
            raise InputError(f"not a decision record: {key!r} is missing or not a "
                             f"{kind.__name__}", file=file, field=key)
    return record


def _decision_file(decision: str) -> Path | None:
    """The decision file ``decision`` names: the file itself, or a check's output
    folder's decision.json; None for a hash. A folder without one is bad input, not a
    hash to look up in the store."""
    from hilt.errors import InputError

    path = Path(decision)
    if path.is_file():
        return path
    if path.is_dir():
        if (path / "decision.json").is_file():
            return path / "decision.json"
        raise InputError("is a folder without a decision.json; give a decision.json "
                         "file, a check's output folder, or a stored decision's hash",
                         file=str(path), field="decision")
    if "/" in decision or "\\" in decision or decision.endswith(".json"):
        # a hash has neither: a mistyped path must not be looked up in the database
        raise InputError("no such file or folder (a stored decision is named by its hash, "
                         "which has no '/' and no '.json')", file=str(path),
                         field="decision")
    return None


def _load(decision: str, db: str | None) -> dict[str, Any]:
    from hilt.errors import InputError

    path = _decision_file(decision)
    if path is not None:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"not a JSON decision record ({exc})", file=str(path)) from exc
        return _check_shape(record, str(path))
    from hilt.gate.store import get_decision
    from hilt.store.db import transaction

    with transaction(_engine(db)) as session:
        return dict(get_decision(session, decision).record)


@gate_app.command("verify")
def verify(decision: DecisionArg,
           inputs: Annotated[bool, typer.Option(
               "--inputs", help="also re-read the suite and response files the record "
                                "names and check the record against them")] = False,
           inputs_dir: Annotated[Path | None, typer.Option(
               "--inputs-dir", help="with --inputs (implied): look for the input files in "
                                    "this folder only, at the trailing parts of their "
                                    "recorded paths (suites/a/x.jsonl, a/x.jsonl, "
                                    "x.jsonl)")] = None,
           chain: Annotated[bool, typer.Option(
               "--chain", help="for a decision file that supersedes another or carries "
                               "sign-offs: also check each link of its supersedes chain, "
                               "and that each sign-off was recorded, against the store "
                               "(--db or the configured database)")] = False,
           db: DbOption = None) -> None:
    """Recompute the decision from its stored inputs; exit 0 if it agrees, 1 if not.

    A stored decision (a hash) is also compared with its row's columns (outcome,
    policy, suite, candidate, reference, supersedes), and each link of its supersedes
    chain is checked, each sign-off against its gate_signoffs row. A decision file is
    checked alone unless --chain is given; its result then says ``chain: not checked``
    when it supersedes another or carries sign-offs.

    With --inputs the files the record names must still hold their recorded sha256 and
    say what the record says (items, file judgments, flags, rewards). Each is looked
    for at its place relative to a decision file's folder, then to the folder above (the
    trailing parts of its recorded path, longest first, down to its bare name), then at
    its recorded path; the first found is checked, and inputs.files names it.
    """
    from hilt.errors import InputError
    from hilt.evals.recheck import check_inputs
    from hilt.gate.decision import verify as verify_record
    from hilt.gate.signoff_rows import carries_signoffs

    if inputs_dir is not None:
        if not inputs_dir.is_dir():
            raise InputError("not a folder", file=str(inputs_dir), field="--inputs-dir")
        inputs = True
    path = _decision_file(decision)
    if chain and path is None:
        raise InputError("--chain is for a decision file: a stored decision's chain is "
                         "always checked", field="--chain")
    if path is not None:
        record = _load(str(path), db)
        report = verify_record(record)
        result = report.as_dict()
        # sign-offs are recorded in the store alone, so a record carrying any has a
        # chain to check even when it names no record it supersedes
        has_chain = isinstance(record.get("supersedes"), str) or carries_signoffs(record)
        if has_chain and chain:
            problems = _file_chain(record, db)
            result.update(chain="checked", ok=result["ok"] and not problems,
                          problems=[*result["problems"], *problems])
        elif has_chain:
            result["chain"] = "not checked (give --chain to check it against the store)"
    else:
        from hilt.gate.store import verify_stored
        from hilt.store.db import transaction

        with transaction(_engine(db)) as session:
            stored = verify_stored(session, decision)
        record, result = stored.record, stored.as_dict()
    if inputs:
        checked = check_inputs(record, path.parent if path is not None else None,
                               inputs_dir=inputs_dir)
        result["inputs"] = checked.as_dict()
        result["ok"] = result["ok"] and not checked.problems
    _echo_json(result)
    raise typer.Exit(0 if result["ok"] else 1)


def _file_chain(record: dict[str, Any], db: str | None) -> list[str]:
    """What is wrong with a decision file's supersedes chain, checked against the store:
    its parent must be stored and each link derived from the one before."""
    from hilt.gate.store import chain_problems
    from hilt.store.db import transaction

    with transaction(_engine(db)) as session:
        return chain_problems(session, record)


def _outputs_for(record: dict[str, Any], out: Path | None) -> dict[str, str]:
    """What ``--out`` receives: the record alone, or, when ``out`` is the decision.json
    of a check's output folder, the report files too, so that the folder never says
    BLOCK beside a passing decision."""
    from hilt.evals.report import to_json
    from hilt.evals.review_loop import render_outputs

    if out is None:
        return {}
    if out.name == "decision.json" and any(
            (out.parent / name).exists() for name in ("report.json", "report.html")):
        return render_outputs(record, out.parent)
    return {out.name: to_json(record)}


@gate_app.command("signoff")
def signoff(decision: DecisionArg,
            role: Annotated[str, typer.Option(help="the role signing: one the decision's "
                                                   "policy requires, e.g. release_owner")],
            by: Annotated[str, typer.Option(
                help="who signs: a registered, active lead or admin identity granted "
                     "the role (hilt reviewer grant-signoff)")],
            note: Annotated[str, typer.Option(help="why, kept in the record")] = "",
            out: Annotated[Path | None, typer.Option(help="also write the new record "
                                                          "here (the decision.json of a "
                                                          "check's folder: its reports "
                                                          "too)")] = None,
            db: DbOption = None) -> None:
    """Sign off the newest record of a decision; prints the superseding record's outcome.

    A decision given as a file (or a check's output folder) is stored first, after
    verification and after checking it against its input files (found as `hilt gate
    verify --inputs` finds them; inputs.files names them). Signing twice under one role
    is refused. Exit 0 if the gate now passes, 1 if it still blocks.
    """
    from hilt.errors import InputError
    from hilt.evals.report import check_out_dir, write_outputs_atomically
    from hilt.gate.store import retried, sign_off, store_decision_file

    file = _decision_file(decision)
    record = _load(str(file), db) if file is not None else None
    if out is not None:
        check_out_dir(out.parent)
        if out.is_dir():  # refused before the sign-off is stored, not after
            raise InputError("is a folder; --out names the file to write (a check's "
                             "DIR/decision.json)", file=str(out), field="--out")

    checked: dict[str, str | None] = {}

    def work(session: Any) -> tuple[dict[str, Any], dict[str, str]]:
        ref = (store_decision_file(session, record, actor=by, file=file,
                                   files_checked=checked).hash
               if record is not None and file is not None else decision)
        row = sign_off(session, ref, role=role, signed_by=by, note=note, via="cli")
        new_record = dict(row.record)
        # rendered before the commit: a report that cannot be rebuilt (an input file
        # moved) stops the sign-off instead of leaving a stale folder
        return new_record, _outputs_for(new_record, out)

    # two sign-offs storing the same decision file at once: the retry finds it stored
    # and builds on the newest record
    with options_named({"note": "--note"}):
        new_record, files = retried(_engine(db), work)
    if out is not None:
        write_outputs_atomically(out.parent, files)
    summary = {"decision": new_record["hash"], "supersedes": new_record["supersedes"],
               "outcome": new_record["outcome"], "reasons": new_record["decision"]["reasons"]}
    if checked:  # the file's record was stored here: the input files it was checked on
        summary["inputs"] = {"files": checked}
    _echo_json(summary)
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
    from hilt.evals.recheck import reload_inputs
    from hilt.evals.report import check_out_dir, write_outputs_atomically
    from hilt.evals.review_loop import fold_review_labels, render_outputs
    from hilt.gate.store import latest, store_decision_file
    from hilt.store.db import transaction

    check_out_dir(out)
    path = out / "decision.json"
    record = _load(str(path), db)
    # the input files are found (and their sha256 checked) before anything is stored
    reload_inputs(record, out)
    checked: dict[str, str | None] = {}
    with transaction(_engine(db)) as session:
        store_decision_file(session, record, actor=actor, file=path, files_checked=checked)
        new_record = fold_review_labels(session, record, actor=actor)
        if new_record is None:
            new_record = dict(latest(session, record["hash"]).record)
        # rendered inside the transaction: if the report cannot be built, nothing commits
        files = render_outputs(new_record, out) if new_record["hash"] != record["hash"] \
            else None
    if files is not None:
        write_outputs_atomically(out, files)
    summary = new_record["metrics"].get("review_sample") or {}
    _echo_json({"decision": new_record["hash"], "supersedes": new_record["supersedes"],
                "outcome": new_record["outcome"], "reasons": new_record["decision"]["reasons"],
                "review": {k: summary.get(k) for k in ("sampled", "returned")},
                **({"inputs": {"files": checked}} if checked else {})})
    raise typer.Exit(0 if new_record["outcome"] == "pass" else 1)


@gate_app.command("show")
def show(decision: DecisionArg,
         full: Annotated[bool, typer.Option("--full", help="print the whole record")] = False,
         db: DbOption = None) -> None:
    """Print a decision: outcome, reasons, criteria, sign-offs, versions, card gaps."""
    from hilt.errors import InputError

    record = _load(decision, db)
    newer = _superseded_by(decision, db)
    if full:
        _echo_json({**record, **newer} if newer else record)
        return
    try:
        d = record["decision"]
        summary = {"hash": record["hash"], "outcome": record["outcome"],
                   "supersedes": record.get("supersedes"), "created_at": record["created_at"],
                   "reasons": d["reasons"], "versions": record["inputs"]["versions"],
                   "criteria": [{k: c[k] for k in ("id", "slice", "status", "numbers")}
                                for c in d["criteria"]],
                   "signoffs": d["signoffs"]["present"],
                   "lineage": d["lineage"],
                   "contract_card_unanswered": d["contract_card"]["unanswered"],
                   **newer}
    except (KeyError, TypeError, IndexError) as exc:
        raise InputError(f"decision record malformed ({exc!r}); hilt gate verify says "
                         "more", file=str(_decision_file(decision) or "") or None,
                         field="decision") from exc
    _echo_json(summary)


def _superseded_by(decision: str, db: str | None) -> dict[str, Any]:
    """For a stored decision that a newer record replaces: ``superseded_by`` (the record
    that names it) and ``newest`` (the end of its chain), so that reading an old record
    never passes for reading the decision as it stands. Empty for a file, or a record
    nothing supersedes."""
    if _decision_file(decision) is not None:
        return {}
    from hilt.gate.store import get_decision, latest, successor
    from hilt.store.db import transaction

    with transaction(_engine(db)) as session:
        row = get_decision(session, decision)
        nxt = successor(session, row.hash)
        if nxt is None:
            return {}
        newest = latest(session, row.hash)
        return {"superseded_by": nxt.hash, "newest": newest.hash,
                "newest_outcome": newest.record.get("outcome"),
                "note": f"this record is superseded: the decision as it stands is "
                        f"{newest.hash} ({newest.record.get('outcome')}); hilt gate show "
                        f"{newest.hash}"}


@gate_app.command("list")
def list_(limit: Annotated[int, typer.Option(min=1, help="at most this many decisions")
                           ] = 20,
          after: AfterOption = None, db: DbOption = None) -> None:
    """Stored decisions, newest first (those stored in the same instant by hash), as
    their records say (outcome, policy, candidate, reference, supersedes). When more
    decisions follow, stderr says how to list them: 'more: --after CURSOR'."""
    from hilt.gate.store import DECISION_ORDER, decision_summary, list_decisions
    from hilt.store.db import read_snapshot

    with options_named(AFTER_NAMED), read_snapshot(_engine(db)) as session:
        rows, more = DECISION_ORDER.page(list_decisions(session, limit + 1, after=after),
                                         limit)
        summaries = [decision_summary(r) for r in rows]
    _echo_json(summaries)
    note_more(more)


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
