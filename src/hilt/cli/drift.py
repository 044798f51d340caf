"""Drift commands: ``hilt drift run|alerts|ack|bridge ...|compat|decide`` and the
top-level ``hilt lineage MODEL_VERSION``. Thin: each parses arguments and calls
``hilt.quality.drift``."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hilt.cli.core import DbOption, echo_json, engine_for, options_named
from hilt.cli.paging import AFTER_NAMED, AfterOption, note_more

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

drift_app = typer.Typer(help="Rubric and feedback drift: monitors, alerts, bridge sets.",
                        no_args_is_help=True)
bridge_app = typer.Typer(help="Bridge sets: re-review old labels under a new rubric version.",
                         no_args_is_help=True)
ActorOption = Annotated[str, typer.Option("--actor", help="who is acting (audit log)")]
BridgeId = Annotated[str, typer.Argument(help="bridge set id")]
RubricId = Annotated[str, typer.Argument(help="rubric id")]
OldVersion = Annotated[int, typer.Argument(help="old rubric version")]
NewVersion = Annotated[int, typer.Argument(help="new rubric version")]


def _tx(db: str | None) -> AbstractContextManager[Session]:
    from hilt.store.db import transaction

    return transaction(engine_for(db))


def _when(value: str | None, field: str) -> datetime | None:
    from hilt.errors import InputError

    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"not an ISO date/time: {value!r}", field=field) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def load_config(path: Path | None) -> Any:
    """A :class:`DriftConfig` from a YAML/JSON file of its fields (defaults otherwise);
    every error names the file and, where it has one, the line and the field."""
    from hilt.errors import InputError
    from hilt.quality._settings import read_settings_file
    from hilt.quality.drift.windows import DriftConfig

    if path is None:
        return DriftConfig()
    data, line_of = read_settings_file(path)
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise InputError("a drift config is a mapping of settings", file=str(path),
                         line=line_of(()))
    unknown = sorted(set(data) - set(DriftConfig.__dataclass_fields__), key=str)
    if unknown:
        raise InputError(f"unknown settings {unknown}", file=str(path),
                         line=line_of((unknown[0],)), field=str(unknown[0]))
    return DriftConfig.from_dict(data, file=str(path), line_of=line_of)


@drift_app.command("run")
def run(now: Annotated[str | None, typer.Option(help="evaluate as of this ISO time")] = None,
        config: Annotated[Path | None, typer.Option(help="drift config (YAML/JSON)")] = None,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="show the alerts without storing them")] = False,
        db: DbOption = None, actor: ActorOption = "cli") -> None:
    """Run every monitor over the recent complete windows; store and print new alerts,
    and the groups that had data but could not be tested ("untested")."""
    from hilt.quality.drift.runner import monitor_run

    cfg = load_config(config)
    moment = _when(now, "--now")
    # a --now whose windows leave years 1..9999 is refused naming it (run_windows)
    with options_named({"now": "--now"}), _tx(db) as session:
        result = monitor_run(session, moment, config=cfg, actor=actor, store=not dry_run)
        echo_json({"stored": not dry_run, "alerts": [a.as_dict() for a in result.alerts],
                   "untested": result.untested, "left_out": result.left_out})


@drift_app.command("alerts")
def alerts(monitor: Annotated[str | None, typer.Option(help="only this monitor")] = None,
           status: Annotated[str | None, typer.Option(help="open | acknowledged")] = None,
           since: Annotated[str | None, typer.Option(help="windows from this ISO time")] = None,
           limit: Annotated[int, typer.Option(min=1, help="at most this many alerts")
                            ] = 200,
           after: AfterOption = None,
           full: Annotated[bool, typer.Option(
               help="include each alert's test detail")] = False,
           db: DbOption = None) -> None:
    """List stored drift alerts, newest window first (one window's by monitor, then id).
    When more alerts follow, stderr says how to list them: 'more: --after CURSOR'."""
    from hilt.quality.drift.stored import ALERT_ORDER, alert_row_dict, alert_rows

    # an unknown monitor or status is refused naming the option, not an empty list
    named = {**AFTER_NAMED, "monitor": "--monitor", "status": "--status"}
    with options_named(named), _tx(db) as session:
        found, more = ALERT_ORDER.page(alert_rows(
            session, monitor=monitor, status=status, since=_when(since, "--since"),
            limit=limit + 1, after=after), limit)
        rows = [alert_row_dict(r) for r in found]
    if not full:
        # The figures the alert is about keep their intervals (``intervals``); only the
        # full test detail is left out.
        for r in rows:
            r.pop("detail", None)
    echo_json(rows)
    note_more(more)


@drift_app.command("ack")
def ack(alert_id: Annotated[str, typer.Argument(help="alert id")],
        note: Annotated[str, typer.Option(help="what was done")] = "",
        db: DbOption = None, actor: ActorOption = "cli") -> None:
    """Acknowledge an alert; again on an acknowledged one appends the note (audited)."""
    from hilt.quality.drift.stored import acknowledge

    with _tx(db) as session:
        echo_json(acknowledge(session, alert_id, actor=actor, note=note))


@bridge_app.command("create")
def bridge_create(rubric: Annotated[str, typer.Argument(help="rubric id")],
                  old: Annotated[int, typer.Option("--old", help="old version")],
                  new: Annotated[int, typer.Option("--new", help="new version")],
                  question: Annotated[str | None, typer.Option(
                      help="single-choice question to stratify on (default: first shared)")
                  ] = None,
                  per_stratum: Annotated[int, typer.Option(help="items per old label")] = 30,
                  seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
                  pool: Annotated[str, typer.Option(
                      help="reviewer pool for the bridge tasks")] = "default",
                  overlap: Annotated[int, typer.Option(help="reviews per item")] = 3,
                  threshold: Annotated[float, typer.Option(
                      help="flag when P(changed | old) is above this (lower bound)")] = 0.15,
                  db: DbOption = None, actor: ActorOption = "cli") -> None:
    """Sample items labelled under OLD, stratified by old label, and queue them for
    re-review under NEW."""
    from hilt.errors import InputError
    from hilt.quality.drift.bridge import create_bridge
    from hilt.quality.drift.transition import BridgeSettings

    try:
        settings = BridgeSettings(change_threshold=threshold)
    except ValueError as exc:
        raise InputError(f"must lie in [0, 1), not {threshold}", field="threshold") from exc
    options = {"per_stratum": "--per-stratum", "overlap_k": "--overlap",
               "question": "--question", "old_version": "--old", "new_version": "--new"}
    try:
        with _tx(db) as session:
            made = create_bridge(session, rubric, old, new, actor=actor,
                                 question_id=question, per_stratum=per_stratum, seed=seed,
                                 pool=pool, overlap_k=overlap, settings=settings)
    except InputError as exc:
        if exc.file is None and exc.field in options:  # name the option the user typed
            raise InputError(exc.reason, field=options[exc.field]) from None
        raise
    echo_json(made)


@bridge_app.command("status")
def bridge_status_cmd(bridge_id: BridgeId, db: DbOption = None) -> None:
    """Progress of a bridge set and its transition matrix so far (JSON)."""
    from hilt.quality.drift.bridge import bridge_status

    with _tx(db) as session:
        echo_json(bridge_status(session, bridge_id))


@bridge_app.command("matrix")
def bridge_matrix(bridge_id: BridgeId, db: DbOption = None) -> None:
    """The old→new transition matrix as a table, with P(changed | old) and its interval."""
    from hilt.quality.drift.bridge import bridge_status

    with _tx(db) as session:
        status = bridge_status(session, bridge_id)
    m = status["matrix"]
    news = m["new_categories"]
    width = max([len(c) for c in news + m["old_categories"]] + [8])
    typer.echo(f"{status['rubric_id']}@{status['old_version']} -> @{status['new_version']}, "
               f"question {status['question_id']}: {status['relabelled']}/{status['items']} "
               "re-reviewed")
    typer.echo("old \\ new".ljust(width) + "".join(c.rjust(width + 2) for c in news)
               + "   n  P(changed) [CI]")
    for old, counts, row in zip(m["old_categories"], m["counts"], m["rows"], strict=True):
        rate = "-" if row["rate"] is None else f"{row['rate']:.2f}"
        typer.echo(old.ljust(width) + "".join(str(c).rjust(width + 2) for c in counts)
                   + f"{row['n']:>4}  {rate} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
                   + ("  FLAGGED" if row["flagged"] else ""))
    if m.get("untestable"):
        typer.echo(f"untestable (no items to re-review): {', '.join(m['untestable'])}")
    typer.echo(f"{m['status']}: {m['reason']}")


@drift_app.command("compat")
def compat(rubric: RubricId, old: OldVersion, new: NewVersion, db: DbOption = None) -> None:
    """Whether labels of two rubric versions may be mixed."""
    from hilt.quality.drift.bridge import published_compatibility

    with _tx(db) as session:
        echo_json(published_compatibility(session, rubric, old, new).as_dict())


@drift_app.command("decide")
def decide(rubric: RubricId, old: OldVersion, new: NewVersion,
           kind: Annotated[str, typer.Option(help="mapping | relabel | accept | withdraw")],
           reason: Annotated[str, typer.Option(help="why (audit log)")],
           question: Annotated[str | None, typer.Option(help="question id")] = None,
           mapping: Annotated[str | None, typer.Option(
               help='old label -> new label as JSON, e.g. {"borderline": "harmful"}')] = None,
           bridge: Annotated[str | None, typer.Option(help="bridge set it rests on")] = None,
           db: DbOption = None, actor: ActorOption = "cli") -> None:
    """Record a decision on mixing labels of two rubric versions (audited)."""
    from hilt.errors import InputError
    from hilt.quality.drift.bridge import record_decision

    parsed = None
    if mapping is not None:
        try:
            parsed = json.loads(mapping)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON: {exc.msg}", field="--mapping") from None
        if not isinstance(parsed, dict):
            raise InputError("the mapping is a JSON object old -> new", field="--mapping")
    named = {"question": "--question", "mapping": "--mapping", "kind": "--kind",
             "reason": "--reason", "bridge_id": "--bridge"}
    with options_named(named), _tx(db) as session:
        echo_json(record_decision(session, rubric, old, new, kind=kind, reason=reason,
                                  actor=actor, question_id=question, mapping=parsed,
                                  bridge_id=bridge))


def lineage(model_version: Annotated[str, typer.Argument(
                help="model version id (or a dataset version id with --dataset)")],
            dataset: Annotated[bool, typer.Option(
                "--dataset", help="start from a dataset version instead")] = False,
            as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
            limit: Annotated[int, typer.Option(
                help="reviews and adjudications listed per dataset")] = 20,
            db: DbOption = None) -> None:
    """The chain from a model version back through datasets and reviews to rubric and
    policy versions."""
    from hilt.quality.drift.lineage import dataset_lineage_tree, model_lineage, render_tree

    with options_named({"limit": "--limit"}), _tx(db) as session:
        tree = (dataset_lineage_tree(session, model_version, detail_limit=limit) if dataset
                else model_lineage(session, model_version, detail_limit=limit))
    if as_json:
        echo_json(tree)
    else:
        typer.echo(render_tree(tree))


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    drift_app.add_typer(bridge_app, name="bridge")
    app.add_typer(drift_app, name="drift")
    app.command("lineage")(lineage)
