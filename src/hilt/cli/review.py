"""Review commands: rubric, escalation, task, queue, review, adjudicate, labels.

The CLI talks to the database directly, so it acts with the rights of whoever can open
the database; HTTP callers go through tokens and roles instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from hilt.cli.core import (
    DbOption,
    as_options,
    echo_json,
    engine_for,
    iso_times,
    options_named,
)
from hilt.cli.paging import AFTER_NAMED, AfterOption, note_more

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
Limit = Annotated[int, typer.Option(min=1, help="at most this many rows")]
RuleFile = Annotated[Path, typer.Argument(help="escalation rule set (YAML)")]


class _JsonArg:
    """A JSON object given inline, or ``@FILE`` to read it from a file (a UTF-8
    byte-order mark is allowed there). A key repeated in the object, or a number that
    is not finite, is refused as in the JSONL files (:func:`hilt.jsonl.loads_strict`).
    For a file, errors name the file and the line of the key at fault."""

    def __init__(self, value: str, field: str) -> None:
        from hilt.errors import InputError
        from hilt.jsonl import loads_strict

        self.file: str | None = None
        self.text = value
        where = "argument"
        if value.startswith("@"):
            self.file = where = value[1:]
            try:
                raw = Path(where).read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read: {exc.strerror or exc}", file=where,
                                 field=field) from None
            try:
                self.text = raw.decode("utf-8").removeprefix("\ufeff")
            except UnicodeDecodeError as exc:
                raise InputError("not UTF-8 text", file=where,
                                 line=raw.count(b"\n", 0, exc.start) + 1) from None
        try:
            parsed = loads_strict(self.text, file=where,
                                  field=None if self.file else field)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON: {exc.msg}", file=where, line=exc.lineno,
                             field=field) from None
        except InputError as exc:  # a repeated key, or NaN or infinity
            raise self.located(exc) from None
        if not isinstance(parsed, dict):
            raise InputError("expected a JSON object of question id -> answer, got "
                             f"{type(parsed).__name__}", file=where, field=field)
        self.value: dict[str, Any] = parsed

    def located(self, exc: Exception) -> Exception:
        """An error about one answer named by the file and the line of its key.

        Submissions name the answers ``answers`` (gold items ``gold answers``) in place
        of a file, and adjudications name the field ``answers.QUESTION``."""
        from hilt.errors import InputError

        if self.file is None or not isinstance(exc, InputError):
            return exc
        field = exc.field
        if exc.file not in ("answers", "gold answers", self.file):
            if exc.file is not None or not (field or "").startswith("answers."):
                return exc
            field = (field or "").removeprefix("answers.")
        return InputError(exc.reason, file=self.file, line=self._line(field), field=field)

    def _line(self, field: str | None) -> int | None:
        """The line of the top-level key ``field`` is in (of its second occurrence when
        ``field`` is that key and it repeats)."""
        if not field:
            return None
        keys = _top_level_keys(self.text)
        tops = sorted({k for k, _ in keys if field == k or field.startswith((f"{k}.",
                                                                            f"{k}["))},
                      key=len)
        if not tops:
            return None
        lines = [line for k, line in keys if k == tops[-1]]
        return lines[1] if field == tops[-1] and len(lines) > 1 else lines[0]


_SPACE = re.compile(r"[ \t\n\r]*")


def _top_level_keys(text: str) -> list[tuple[str, int]]:
    """``(key, line)`` for each key of the JSON object ``text``, in order (repeats
    included); stops quietly where the text is not a JSON object."""
    def skip(at: int) -> int:  # past JSON whitespace
        found = _SPACE.match(text, at)
        return found.end() if found else at

    decoder = json.JSONDecoder()
    keys: list[tuple[str, int]] = []
    at = skip(0)
    if text[at:at + 1] != "{":
        return keys
    at = skip(at + 1)
    try:
        while text[at:at + 1] == '"':
            line = text.count("\n", 0, at) + 1
            key, at = decoder.raw_decode(text, at)  # a JSON string
            keys.append((str(key), line))
            at = skip(skip(at) + 1)  # past the ':'
            _, at = decoder.raw_decode(text, at)
            at = skip(at)
            if text[at:at + 1] != ",":
                break
            at = skip(at + 1)
    except ValueError:
        pass
    return keys


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
    """Guideline-gap adjudications: material for the rubric's next version (an
    unpublished rubric id is refused)."""
    from hilt.review.rubrics import get_version, guideline_proposals

    with _tx(db) as s:
        get_version(s, rubric_id)
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
                        version: Annotated[int | None, typer.Option(
                            help="version number to draw audit samples with (0: draft; "
                                 "default: the published version with the file's id and "
                                 "content, else 0 with a note)")
                        ] = None, db: DbOption = None) -> None:
    """How many stored events each rule would escalate; creates no tasks."""
    from hilt.review.escalation import backtest, load_rule_file

    rules = load_rule_file(file)
    with _tx(db) as s:
        report = backtest(s, rules, version=version)
    if "version_note" in report:
        typer.echo(f"note: {report['version_note']}", err=True)
    echo_json(report)


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
        raise as_options(exc, {"sla_hours": "--sla-hours", "overlap": "--overlap",
                                "severity": "--severity", "pool": "--pool"}) from None
    echo_json({"task_id": task_id})


@task_app.command("gold")
def task_gold(event: Annotated[str, typer.Option(help="event id")],
              rubric: Annotated[str, typer.Option(help="ID or ID@VERSION")],
              answers: Annotated[str, typer.Option(help="known answers: JSON or @FILE")],
              pool: Annotated[str, typer.Option(help="reviewer pool")] = "default",
              db: DbOption = None) -> None:
    """Add a calibration (gold) item with known answers."""
    from hilt.errors import InputError
    from hilt.review.tasks import create_gold_task

    given = _JsonArg(answers, "answers")
    try:
        with _tx(db) as s:
            task_id = create_gold_task(s, event_id=event, rubric=rubric,
                                       answers=given.value, actor="cli", pool=pool)
    except InputError as exc:
        raise as_options(given.located(exc), {"pool": "--pool"}) from None
    echo_json({"task_id": task_id})


@task_app.command("gold-carry")
def task_gold_carry(rubric: Annotated[str, typer.Option(
                        help="the version to carry to, ID@N (ID alone: the newest)")],
                    dry_run: Annotated[bool, typer.Option(
                        "--dry-run", help="say what would be carried; write nothing")] = False,
                    ignore_guidelines: Annotated[bool, typer.Option(
                        "--ignore-guidelines",
                        help="carry even where the rubric-wide guidelines or worked "
                             "examples changed")] = False,
                    db: DbOption = None) -> None:
    """Carry gold items at earlier versions of a rubric over to ID@N where the questions
    their known answers cover (and N's required questions) did not change; the others
    are listed as skipped, with the questions that changed."""
    from hilt.review.gold_carry import carry_gold

    with options_named({"rubric": "--rubric"}), _tx(db) as s:
        result = carry_gold(s, rubric, actor="cli", dry_run=dry_run,
                            ignore_guidelines=ignore_guidelines)
    echo_json(result)


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

    engine = engine_for(db)
    found = next_task(engine, reviewer, with_view=True)
    if found is None:  # stdout stays `null` for scripts; people are told why
        typer.echo(f"note: {_why_no_task(engine, reviewer)}", err=True)
    echo_json(None if found is None else found.view)


def _why_no_task(engine: Any, reviewer: str) -> str:
    """Why the queue had no task for ``reviewer``, in one line: an onboarding reviewer
    receives only calibration (gold) items, and gold items at an older rubric version
    than their pool's open tasks are held back (:mod:`hilt.review.gold`); anyone else
    has no task open to them in their pools."""
    from hilt.review.eligibility import eligible_work
    from hilt.review.gold import held_back
    from hilt.store.db import read_snapshot
    from hilt.store.tables.core import ReviewerRow

    with read_snapshot(engine) as session:
        row = session.get(ReviewerRow, reviewer)
        if row is None:  # removed since the claim
            return f"no task for {reviewer!r}"
        pools, status = list(row.pools or ["default"]), row.status
        named = ", ".join(pools)
        if eligible_work(row.status, active=bool(row.active)) != "gold_only":
            return (f"no task is waiting for {reviewer!r} in their pools ({named}); "
                    "`hilt queue stats` counts the tasks per pool")
        held = [h for h in held_back(session) if h["pool"] in pools]
    why = (f"no calibration (gold) item is waiting for {reviewer!r} in their pools "
           f"({named}): while {status} they receive only gold items, other tasks "
           "once they pass calibration")
    if not held:
        return why + "; add gold items with `hilt task gold`"
    kept = ", ".join(f"{h['gold_tasks']} at {h['rubric']} in {h['pool']} (open tasks "
                     f"use {h['open_tasks_use']})" for h in held)
    carry = ", ".join(f"`hilt task gold-carry --rubric {ref}`"
                      for ref in sorted({h["open_tasks_use"] for h in held}))
    return (why + f"; gold items held back: {kept}; carry over those whose questions did "
            f"not change with {carry}, then answer the rest again under the newer "
            "version with `hilt task gold`")


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
    from hilt.review.triage import TriageConfig, run_triage
    from hilt.review.yamlio import load_yaml
    from hilt.store.tables.base import utcnow

    settings = TriageConfig()
    if config is not None:
        data, line_of = load_yaml(config)  # errors name the file and line
        settings = TriageConfig.from_dict(data, file=str(config), line_of=line_of)
    with _tx(db) as s:
        echo_json(run_triage(s, utcnow(), actor="cli", config=settings))


# --- review ----------------------------------------------------------------------------

# the fields of a submission (as the HTTP API names them) and the options that give them
_SUBMIT_OPTIONS = {"confidence": "--confidence", "rationale": "--rationale",
                   "rewrite": "--rewrite", "time_spent_s": "--time-spent"}


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
    from hilt.errors import InputError
    from hilt.review.reviews import Submission
    from hilt.review.work import submit, submit_and_next

    given = _JsonArg(answers, "answers")
    sub = Submission(given.value, confidence, rationale, rewrite, time_spent)
    try:
        if not and_next:
            result = submit(engine_for(db), task_id, reviewer, sub)
            echo_json({k: v for k, v in result.as_dict().items() if k != "task_status"})
            return
        result, found = submit_and_next(engine_for(db), task_id, reviewer, sub,
                                        with_view=True)
    except InputError as exc:
        raise as_options(given.located(exc), _SUBMIT_OPTIONS) from None
    if found is None:
        typer.echo(f"note: {_why_no_task(engine_for(db), reviewer)}", err=True)
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
def review_mine(reviewer: Reviewer, limit: Limit = 50, after: AfterOption = None,
                db: DbOption = None) -> None:
    """A reviewer's own submitted reviews, newest first. When more follow, stderr says
    how to list them: 'more: --after CURSOR'."""
    from hilt.review.views import HISTORY_ORDER, history_rows, history_view

    with options_named(AFTER_NAMED), _tx(db) as s:
        rows, more = HISTORY_ORDER.page(history_rows(s, reviewer, limit=limit + 1,
                                                     after=after), limit)
        echo_json([history_view(r) for r in rows])
    note_more(more)


# --- adjudication ----------------------------------------------------------------------

@adjudicate_app.command("list")
def adjudicate_list(limit: Limit = 50, after: AfterOption = None,
                    db: DbOption = None) -> None:
    """Tasks waiting for an adjudicator, most urgent first. When more follow, stderr
    says how to list them: 'more: --after CURSOR'."""
    from hilt.review.adjudication import PENDING_ORDER, pending_rows, pending_views

    with options_named(AFTER_NAMED), _tx(db) as s:
        rows, more = PENDING_ORDER.page(pending_rows(s, limit=limit + 1, after=after),
                                        limit)
        echo_json(pending_views(rows))
    note_more(more)


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
    from hilt.errors import InputError
    from hilt.review.adjudication import adjudicate

    given = _JsonArg(answers, "answers")
    try:
        with _tx(db) as s:
            adjudication_id = adjudicate(s, task_id, adjudicator, answers=given.value,
                                         rationale=rationale, cause=cause)
    except InputError as exc:
        raise as_options(given.located(exc), {"rationale": "--rationale",
                                               "cause": "--cause"}) from None
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
                      help="only labels at least this confident (0 to 1)")] = None,
                      db: DbOption = None) -> None:
    """Final labels with provenance, one JSON object per line."""
    from hilt.errors import InputError
    from hilt.review.labels import iter_final_labels
    from hilt.review.records import PROVENANCE_KINDS

    # a filter no label can pass would export nothing and look like success
    for kind in provenance or []:
        if kind not in PROVENANCE_KINDS:
            raise InputError(f"unknown provenance {kind!r}; known: "
                             f"{', '.join(PROVENANCE_KINDS)}", field="--provenance")
    if min_confidence is not None and not 0 <= min_confidence <= 1:  # NaN too
        raise InputError(f"must be between 0 and 1, not {min_confidence}",
                         field="--min-confidence")
    if out is not None:
        _check_out(out)
    lines = []
    with _tx(db) as s:
        for rec in iter_final_labels(s, rubric_ids=rubric, provenance=provenance,
                                     min_confidence=min_confidence):
            # the same fields, and times in ISO 8601, as GET /v1/labels gives them
            lines.append(json.dumps(iso_times({**rec.__dict__,
                                               "review_ids": list(rec.review_ids)}),
                                    default=str, ensure_ascii=False))
    from hilt.quality.csv_io import write_text_atomic

    text = "".join(line + "\n" for line in lines)
    if out is None:
        typer.echo(text, nl=False)
        return
    write_text_atomic(out, text, field="--out")  # a temporary file of its own, renamed
    echo_json({"labels": len(lines), "out": str(out)})


def _check_out(out: Path) -> None:
    """Refuse, before the export runs, an ``--out`` that is a folder or whose folder
    does not exist or cannot be written."""
    from hilt.errors import InputError
    from hilt.quality.csv_io import check_output

    check_output(out, "--out")
    if not out.parent.is_dir():
        raise InputError(f"folder {out.parent} does not exist", file=str(out),
                         field="--out")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.add_typer(rubric_app, name="rubric")
    app.add_typer(escalation_app, name="escalation")
    app.add_typer(task_app, name="task")
    app.add_typer(queue_app, name="queue")
    app.add_typer(review_app, name="review")
    app.add_typer(adjudicate_app, name="adjudicate")
    app.add_typer(labels_app, name="labels")
