"""Review commands: rubric, escalation, task, queue, review, adjudicate, labels.

The CLI talks to the database directly, so it acts with the rights of whoever can open
the database; HTTP callers go through tokens and roles instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hilt.cli.core import DbOption, echo_json, engine_for

rubric_app = typer.Typer(help="Rubrics: publish immutable versions, diff them.",
                         no_args_is_help=True)
escalation_app = typer.Typer(help="Escalation rule sets: publish, activate, backtest.",
                             no_args_is_help=True)
task_app = typer.Typer(help="Review tasks: create by hand, gold items, inspect.",
                       no_args_is_help=True)
queue_app = typer.Typer(help="The review queue: next task, triage, stats.",
                        no_args_is_help=True)
review_app = typer.Typer(help="A reviewer's work: submit, heartbeat, release, history.",
                         no_args_is_help=True)
adjudicate_app = typer.Typer(help="Adjudication of disagreeing reviews.",
                             no_args_is_help=True)
labels_app = typer.Typer(help="Final labels with provenance.", no_args_is_help=True)

Reviewer = Annotated[str, typer.Option("--reviewer", help="reviewer id")]
TaskId = Annotated[str, typer.Argument(help="task id")]
Limit = Annotated[int, typer.Option(help="at most this many rows")]
RuleFile = Annotated[Path, typer.Argument(help="escalation rule set (YAML)")]


def _json_arg(value: str, field: str) -> dict[str, Any]:
    """A JSON object given inline, or ``@FILE`` to read it from a file."""
    from hilt.errors import InputError

    text, where = value, "argument"
    if value.startswith("@"):
        where = value[1:]
        try:
            text = Path(where).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read: {getattr(exc, 'strerror', None) or exc}",
                             file=where, field=field) from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", file=where, line=exc.lineno,
                         field=field) from None
    if not isinstance(parsed, dict):
        raise InputError("expected a JSON object of question id -> answer, got "
                         f"{type(parsed).__name__}", file=where, field=field)
    return parsed


def _as_options(exc: Exception, options: dict[str, str]) -> Exception:
    """The error with a field renamed to the command's option (``sla_hours`` →
    ``--sla-hours``), so that the message names what the user typed."""
    from hilt.errors import InputError

    if isinstance(exc, InputError) and exc.file is None and exc.field in options:
        return InputError(exc.reason, line=exc.line, field=options[exc.field])
    return exc


def _tx(db: str | None):
    from hilt.store.db import transaction

    return transaction(engine_for(db))


# --- rubric ----------------------------------------------------------------------------

@rubric_app.command("publish")
def rubric_publish(file: Annotated[Path, typer.Argument(help="rubric (YAML)")],
                   db: DbOption = None) -> None:
    """Publish a rubric YAML as its next immutable version (changelog required after v1)."""
    from hilt.review.gold import publish_notice
    from hilt.review.rubrics import load_rubric_file, publish_rubric

    spec = load_rubric_file(file)
    with _tx(db) as s:
        row = publish_rubric(s, spec, actor="cli")
        echo_json({"id": row.rubric_id, "version": row.version,
                   "content_hash": row.content_hash,
                   **publish_notice(s, row.rubric_id, row.version)})


@rubric_app.command("list")
def rubric_list(db: DbOption = None) -> None:
    """Every rubric with its versions."""
    from hilt.review.rubrics import list_rubrics

    with _tx(db) as s:
        echo_json(list_rubrics(s))


@rubric_app.command("show")
def rubric_show(ref: Annotated[str, typer.Argument(help="ID or ID@VERSION")],
                db: DbOption = None) -> None:
    """One published version: its changelog and full specification."""
    from hilt.review.rubrics import get_version, parse_ref

    with _tx(db) as s:
        row = get_version(s, *parse_ref(ref))
        echo_json({"id": row.rubric_id, "version": row.version, "changelog": row.changelog,
                   "spec": row.spec})


@rubric_app.command("diff")
def rubric_diff(a: Annotated[str, typer.Argument(help="ID@VERSION")],
                b: Annotated[str, typer.Argument(help="ID@VERSION")],
                db: DbOption = None) -> None:
    """What changed between two published versions (questions, options, guidelines)."""
    from hilt.review.rubrics import diff_refs

    with _tx(db) as s:
        echo_json(diff_refs(s, a, b))


@rubric_app.command("proposals")
def rubric_proposals(rubric_id: Annotated[str, typer.Argument(help="rubric id")],
                     db: DbOption = None) -> None:
    """Guideline-gap adjudications: material for the rubric's next version."""
    from hilt.review.rubrics import guideline_proposals

    with _tx(db) as s:
        echo_json(guideline_proposals(s, rubric_id))


# --- escalation ------------------------------------------------------------------------

@escalation_app.command("publish")
def escalation_publish(file: RuleFile, activate: Annotated[bool, typer.Option(
        help="make this version the active rule set")] = True, db: DbOption = None) -> None:
    """Publish a rule set YAML as its next version (rubric references pinned)."""
    from hilt.review.escalation import load_rule_file, publish_rule_set

    rules = load_rule_file(file)
    with _tx(db) as s:
        row = publish_rule_set(s, rules, actor="cli", activate=activate)
        echo_json({"id": row.rule_set_id, "version": row.version, "active": activate})


@escalation_app.command("activate")
def escalation_activate(rule_set_id: Annotated[str, typer.Argument(help="rule set id")],
                        version: Annotated[int, typer.Argument(
        help="version to activate; 0 deactivates this rule set (it must be the "
             "active one), leaving no rule set active")], db: DbOption = None) -> None:
    """Make a published version the active rule set (audited); new events are routed by it."""
    from hilt.review.escalation import activate_rule_set

    with _tx(db) as s:
        before = activate_rule_set(s, rule_set_id, version, actor="cli")
    echo_json({"id": rule_set_id, "version": version, "active": bool(version),
               "previously_active": before})


@escalation_app.command("backtest")
def escalation_backtest(file: RuleFile,
                        version: Annotated[int, typer.Option(
                            help="version number to draw audit samples with (0: draft)")
                        ] = 0, db: DbOption = None) -> None:
    """How many stored events each rule would escalate; creates no tasks."""
    from hilt.review.escalation import backtest, load_rule_file

    rules = load_rule_file(file)
    with _tx(db) as s:
        echo_json(backtest(s, rules, version=version))


# --- tasks -----------------------------------------------------------------------------

@task_app.command("create")
def task_create(event: Annotated[str, typer.Option(help="event id")],
                rubric: Annotated[str, typer.Option(help="ID or ID@VERSION")],
                severity: Annotated[str, typer.Option(
                    help="sev0 (most severe) … sev3; sets the default SLA")] = "sev2",
                pool: Annotated[str, typer.Option(help="reviewer pool")] = "default",
                overlap: Annotated[int, typer.Option(
                    help="independent reviews wanted (k)")] = 3,
                sla_hours: Annotated[float | None, typer.Option(
                    help="hours to resolve (default by severity: 1, 4, 24, 72)")] = None,
                db: DbOption = None) -> None:
    """Send a stored event to review by hand."""
    from hilt.errors import InputError
    from hilt.review.tasks import create_task

    try:
        with _tx(db) as s:
            task_id = create_task(s, event_id=event, rubric=rubric, actor="cli",
                                  severity=severity, pool=pool, overlap_k=overlap,
                                  sla_hours=sla_hours)
    except InputError as exc:
        raise _as_options(exc, {"sla_hours": "--sla-hours", "overlap": "--overlap",
                                "severity": "--severity", "pool": "--pool"}) from None
    echo_json({"task_id": task_id})


@task_app.command("gold")
def task_gold(event: Annotated[str, typer.Option(help="event id")],
              rubric: Annotated[str, typer.Option(help="ID or ID@VERSION")],
              answers: Annotated[str, typer.Option(help="known answers: JSON or @FILE")],
              pool: Annotated[str, typer.Option(help="reviewer pool")] = "default",
              db: DbOption = None) -> None:
    """Add a calibration (gold) item with known answers."""
    from hilt.review.tasks import create_gold_task

    with _tx(db) as s:
        echo_json({"task_id": create_gold_task(s, event_id=event, rubric=rubric,
                                               answers=_json_arg(answers, "answers"),
                                               actor="cli", pool=pool)})


@task_app.command("show")
def task_show(task_id: TaskId, db: DbOption = None) -> None:
    """Everything about a task: escalation provenance, leases, labels."""
    from hilt.review.views import task_detail

    with _tx(db) as s:
        echo_json(task_detail(s, task_id))


# --- queue -----------------------------------------------------------------------------

@queue_app.command("next")
def queue_next(reviewer: Reviewer, db: DbOption = None) -> None:
    """Lease the next task for a reviewer and print it (blind: item and rubric only)."""
    from hilt.review.work import next_task

    found = next_task(engine_for(db), reviewer, with_view=True)
    echo_json(None if found is None else found.view)


@queue_app.command("stats")
def queue_stats(db: DbOption = None) -> None:
    """Task counts per pool and status."""
    from hilt.review.views import queue_stats as stats

    with _tx(db) as s:
        echo_json(stats(s))


@queue_app.command("triage")
def queue_triage(config: Annotated[Path | None, typer.Option(
        help="YAML with triage weights (see docs/review.md)")] = None,
                 db: DbOption = None) -> None:
    """The scheduled job: expire leases, cluster duplicates, re-escalate SLA breaches,
    refresh priorities."""
    import yaml

    from hilt.errors import InputError
    from hilt.review.triage import TriageConfig, run_triage
    from hilt.review.yamlio import UniqueKeyLoader
    from hilt.store.tables.base import utcnow

    settings = TriageConfig()
    if config is not None:
        try:
            data = yaml.load(config.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            mark = getattr(exc, "problem_mark", None)  # YAML errors know their line
            raise InputError(f"cannot read triage settings: {exc}", file=str(config),
                             line=mark.line + 1 if mark is not None else None) from None
        settings = TriageConfig.from_dict(data, file=str(config))
    with _tx(db) as s:
        echo_json(run_triage(s, utcnow(), actor="cli", config=settings))


# --- review ----------------------------------------------------------------------------

@review_app.command("submit")
def review_submit(task_id: TaskId, reviewer: Reviewer,
                  answers: Annotated[str, typer.Option(help="JSON or @FILE")],
                  confidence: Annotated[float | None, typer.Option(
                      help="the reviewer's confidence, 0 to 1")] = None,
                  rationale: Annotated[str | None, typer.Option(
                      help="why (shown to adjudicators)")] = None,
                  rewrite: Annotated[str | None, typer.Option(
                      help="an improved response (a demonstration for SFT)")] = None,
                  time_spent: Annotated[float | None, typer.Option(
                      help="seconds spent")] = None,
                  and_next: Annotated[bool, typer.Option(
                      "--next", help="also lease the reviewer's next task and print it "
                      "as 'next' (as 'hilt queue next' would)")] = False,
                  db: DbOption = None) -> None:
    """Submit a review of a leased task."""
    from hilt.review.reviews import Submission
    from hilt.review.work import submit, submit_and_next

    sub = Submission(_json_arg(answers, "answers"), confidence, rationale, rewrite,
                     time_spent)
    if not and_next:
        result = submit(engine_for(db), task_id, reviewer, sub)
        echo_json({k: v for k, v in result.as_dict().items() if k != "task_status"})
        return
    result, found = submit_and_next(engine_for(db), task_id, reviewer, sub, with_view=True)
    echo_json({**{k: v for k, v in result.as_dict().items() if k != "task_status"},
               "next": None if found is None else found.view})


@review_app.command("heartbeat")
def review_heartbeat(task_id: TaskId, reviewer: Reviewer, db: DbOption = None) -> None:
    """Extend the reviewer's lease on a task; prints when it now expires."""
    from hilt.review.queue import heartbeat

    with _tx(db) as s:
        echo_json({"lease_expires_at": heartbeat(s, task_id, reviewer).isoformat()})


@review_app.command("release")
def review_release(task_id: TaskId, reviewer: Reviewer, db: DbOption = None) -> None:
    """Give a leased task back to the queue without reviewing it."""
    from hilt.review.queue import release

    with _tx(db) as s:
        release(s, task_id, reviewer)
    echo_json({"task_id": task_id, "status": "released"})


@review_app.command("mine")
def review_mine(reviewer: Reviewer, limit: Limit = 50, db: DbOption = None) -> None:
    """A reviewer's own submitted reviews."""
    from hilt.review.views import reviewer_history

    with _tx(db) as s:
        echo_json(reviewer_history(s, reviewer, limit=limit))


# --- adjudication ----------------------------------------------------------------------

@adjudicate_app.command("list")
def adjudicate_list(limit: Limit = 50, db: DbOption = None) -> None:
    """Tasks waiting for an adjudicator, most urgent first."""
    from hilt.review.adjudication import pending

    with _tx(db) as s:
        echo_json(pending(s, limit=limit))


@adjudicate_app.command("show")
def adjudicate_show(task_id: TaskId, db: DbOption = None) -> None:
    """The case file: item, rubric, every review and rationale, and why it is here."""
    from hilt.review.adjudication import case_file

    with _tx(db) as s:
        echo_json(case_file(s, task_id))


@adjudicate_app.command("decide")
def adjudicate_decide(task_id: TaskId,
                      adjudicator: Annotated[str, typer.Option(help="adjudicator id")],
                      answers: Annotated[str, typer.Option(help="JSON or @FILE")],
                      rationale: Annotated[str, typer.Option(
                          help="why this answer (kept with the label)")],
                      cause: Annotated[str, typer.Option(
                          help="guideline_gap, ambiguous_input, reviewer_error, subjective")],
                      db: DbOption = None) -> None:
    """Resolve a disagreement: the final answers and the cause of the disagreement."""
    from hilt.review.adjudication import adjudicate

    with _tx(db) as s:
        adjudication_id = adjudicate(s, task_id, adjudicator,
                                     answers=_json_arg(answers, "answers"),
                                     rationale=rationale, cause=cause)
    echo_json({"adjudication_id": adjudication_id})


# --- labels ----------------------------------------------------------------------------

@labels_app.command("export")
def labels_export(out: Annotated[Path | None, typer.Option(
        help="JSONL file (default: stdout)")] = None,
                  rubric: Annotated[list[str] | None, typer.Option(help="rubric id")] = None,
                  provenance: Annotated[list[str] | None, typer.Option(
                      help="only labels with this provenance (repeatable): unanimous, majority, "
                      "model_aggregated, adjudicated, gold, cluster_propagated")] = None,
                  min_confidence: Annotated[float | None, typer.Option(
                      help="only labels at least this confident")] = None,
                      db: DbOption = None) -> None:
    """Final labels with provenance, one JSON object per line."""
    from hilt.review.labels import iter_final_labels

    lines = []
    with _tx(db) as s:
        for rec in iter_final_labels(s, rubric_ids=rubric, provenance=provenance,
                                     min_confidence=min_confidence):
            lines.append(json.dumps({**rec.__dict__, "review_ids": list(rec.review_ids)},
                                    default=str, ensure_ascii=False))
    text = "".join(line + "\n" for line in lines)
    if out is None:
        typer.echo(text, nl=False)
        return
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    echo_json({"labels": len(lines), "out": str(out)})


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.add_typer(rubric_app, name="rubric")
    app.add_typer(escalation_app, name="escalation")
    app.add_typer(task_app, name="task")
    app.add_typer(queue_app, name="queue")
    app.add_typer(review_app, name="review")
    app.add_typer(adjudicate_app, name="adjudicate")
    app.add_typer(labels_app, name="labels")
