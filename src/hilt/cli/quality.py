"""``hilt quality``: aggregate answers into labels, measure agreement, reviewer calibration
over the store (``reviewers``, ``refresh``, ``set-status``). Thin shell."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hilt.cli.core import DbOption, echo_json, engine_for, options_named

if TYPE_CHECKING:
    from hilt.quality.calibration import CalibrationConfig
    from hilt.quality.model_aggregator import ModelAggregationConfig

quality_app = typer.Typer(help="Label quality: aggregation, agreement, reviewer calibration.",
                          no_args_is_help=True)


class Method(StrEnum):
    mv = "mv"
    ds = "ds"
    one_coin = "one-coin"
    mace = "mace"
    median = "median"
    mean = "mean"


class MetricName(StrEnum):
    percent = "percent"
    cohen = "cohen"
    fleiss = "fleiss"
    krippendorff = "krippendorff"


class LevelName(StrEnum):
    nominal = "nominal"
    ordinal = "ordinal"
    interval = "interval"
    ratio = "ratio"


class KappaWeightName(StrEnum):
    none = "none"
    linear = "linear"
    quadratic = "quadratic"


@quality_app.command("aggregate")
def aggregate(
    answers: Annotated[Path, typer.Argument(help="CSV with header item,reviewer,label")],
    out: Annotated[Path, typer.Option("--out", help="LABELS.csv to write: item,label,confidence")],
    method: Annotated[Method, typer.Option(
        help="mv majority vote, ds Dawid-Skene, one-coin one-coin Dawid-Skene, mace MACE, "
             "median / mean (reviewer-bias-corrected) for numeric ratings")] = Method.ds,
    gold: Annotated[Path | None, typer.Option(
        help="GOLD.csv item,label: clamps known items, adds reviewer gold accuracy")] = None,
    report: Annotated[Path | None, typer.Option(
        help="write the JSON report here instead of printing it on stdout")] = None,
) -> None:
    """Aggregate reviewers' answers into one label per item (contract 1).

    Writes LABELS.csv atomically and prints a JSON report (method, counts, convergence,
    per-reviewer estimated accuracy with a 95% Wilson interval on its expected count and,
    with --gold, gold accuracy with a 95% Wilson interval) on stdout, or to --report.
    """
    from hilt.quality.files import aggregate_file, to_json

    # Both outputs are checked before either is written, and appear together.
    result = aggregate_file(answers, method.value, out, gold, report_path=report)
    if report is None:
        typer.echo(to_json(result))


@quality_app.command("agreement")
def agreement(
    answers: Annotated[Path, typer.Argument(help="CSV with header item,reviewer,label")],
    metric: Annotated[MetricName, typer.Option(help="agreement metric")],
    level: Annotated[LevelName | None, typer.Option(
        help="Krippendorff's level of measurement (default nominal; the other metrics "
             "are nominal)")] = None,
    weights: Annotated[KappaWeightName | None, typer.Option(
        help="Cohen's kappa disagreement weights (default none)")] = None,
    order: Annotated[str | None, typer.Option(
        help="comma-separated label order for ordinal use of non-numeric labels "
             "(spaces around each label are ignored)")] = None,
    resamples: Annotated[int, typer.Option(
        help="bootstrap resamples over items; at least 2/(1-confidence), 40 at 0.95")] = 1000,
    confidence: Annotated[float, typer.Option(help="interval confidence level")] = 0.95,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
) -> None:
    """Print one JSON object: metric, value, ci_low, ci_high and counts (contract 2)."""
    from hilt.errors import InputError
    from hilt.quality.files import agreement_file, to_json

    # An option the metric does not read would leave a nominal, unweighted value that
    # looks like the answer to what was asked.
    if level not in (None, LevelName.nominal) and metric is not MetricName.krippendorff:
        raise InputError(f"--level {level.value} applies to --metric krippendorff only; "
                         f"{metric.value} is computed on nominal labels", field="--level")
    if weights not in (None, KappaWeightName.none) and metric is not MetricName.cohen:
        raise InputError(f"--weights {weights.value} applies to --metric cohen only",
                         field="--weights")
    result = agreement_file(
        answers, metric.value, (level or LevelName.nominal).value,
        None if weights is None or weights is KappaWeightName.none
        else weights.value,  # type: ignore[arg-type]
        order.split(",") if order else None, resamples, confidence, seed)
    typer.echo(to_json(result.as_dict()))


def _columns(confidence: float) -> tuple[tuple[str, str], ...]:
    """(key, title) of the table's columns; the titles state the level the intervals
    were computed at (``calibration.confidence``)."""
    level = f"{confidence * 100:g}% CI"
    return (("reviewer", "reviewer"), ("status", "status"), ("computed_status", "replayed"),
            ("n_answers", "answers"), ("gold", f"gold acc [{level}]"),
            ("agreement", f"final-label agr. [{level}]"), ("model", f"model acc [{level}]"),
            ("trend_alarm", "trend"))


def _rate(value: float | None, low: float, high: float, n: int,
          items: int | None = None) -> str:
    if value is None:
        return "-"
    counted = f" ({items} items)" if items is not None and items != n else ""
    return f"{value:.2f} [{low:.2f}, {high:.2f}] n={n}{counted}"


def _table(rows: list[dict[str, Any]], confidence: float = 0.95) -> str:
    columns = _columns(confidence)
    cells = []
    for r in rows:
        cells.append({
            "reviewer": r["reviewer"], "status": r["status"],
            "computed_status": r["computed_status"], "n_answers": r["n_answers"],
            "gold": _rate(r["gold_accuracy"], r["gold_ci_low"], r["gold_ci_high"],
                          r["n_gold"], r.get("n_gold_items")),
            "agreement": _rate(r["final_label_agreement"], r["agreement_ci_low"],
                               r["agreement_ci_high"], r["n_compared"]),
            "model": _rate(r["model_accuracy"], r["model_ci_low"], r["model_ci_high"],
                           r["model_n_answers"]),
            "trend_alarm": "ALARM" if r["trend_alarm"] else "ok"})
    widths = {key: max([len(title)] + [len(str(c[key])) for c in cells])
              for key, title in columns}
    lines = ["  ".join(title.ljust(widths[key]) for key, title in columns)]
    lines += ["  ".join(str(c[key]).ljust(widths[key]) for key, _ in columns)
              for c in cells]
    return "\n".join(line.rstrip() for line in lines)


def _settings(config: Path | None
              ) -> tuple[ModelAggregationConfig, CalibrationConfig]:
    from hilt.quality._settings import read_settings_file
    from hilt.quality.store import settings_from_dict

    if config is None:
        return settings_from_dict({})
    # Every error names the file and, where it has one, the line and the field.
    data, line_of = read_settings_file(config)
    return settings_from_dict(data, file=str(config), line_of=line_of)


ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="YAML with 'aggregation' and 'calibration' sections (docs/quality.md)")]


@quality_app.command("reviewers")
def reviewers(as_json: Annotated[bool, typer.Option(
                  "--json", help="print JSON instead of a table")] = False,
              config: ConfigOption = None, db: DbOption = None) -> None:
    """Per-reviewer report: status, gold accuracy, agreement with final labels and the
    Dawid-Skene accuracy estimate, each with an interval at the calibration confidence
    (95% by default; gold accuracy counted per gold task), and the trend flag."""
    from hilt.quality.store import reviewer_quality_report
    from hilt.store.db import transaction

    _, calibration = _settings(config)
    with transaction(engine_for(db)) as session:
        rows = reviewer_quality_report(session, calibration)
    if as_json:
        echo_json(rows)  # each row states its level as "confidence"
    else:
        typer.echo(_table(rows, calibration.confidence))


@quality_app.command("refresh")
def refresh(rubric: Annotated[list[str] | None, typer.Option(
                help="rubric id to refit (repeatable; default every rubric with reviews, "
                     "and reviewer statuses)")] = None,
            config: ConfigOption = None,
            actor: Annotated[str, typer.Option(help="who is acting (audit log)")] = "cli",
            db: DbOption = None) -> None:
    """Refit the Dawid-Skene models, re-aggregate automatic labels and tasks waiting for
    adjudication, then update reviewer statuses. Prints a JSON summary."""
    from hilt.quality.store import refresh_all, refresh_labels, update_reviewer_statuses
    from hilt.store.db import transaction

    aggregation, calibration = _settings(config)
    with transaction(engine_for(db)) as session:
        if rubric:
            result = {"rubrics": [refresh_labels(session, r, aggregation,
                                                 actor=actor).as_dict() for r in rubric],
                      "status_changes": update_reviewer_statuses(
                          session, calibration, actor=actor)}
        else:
            result = refresh_all(session, config=aggregation,
                                 calibration=calibration, actor=actor)
    echo_json(result)


@quality_app.command("set-status")
def set_status(reviewer: Annotated[str, typer.Argument(help="reviewer id")],
               status: Annotated[str, typer.Argument(
                   help="onboarding, calibrated, probation or suspended")],
               reason: Annotated[str, typer.Option(help="why (kept in the audit log)")],
               actor: Annotated[str, typer.Option(help="who decides")] = "cli",
               db: DbOption = None) -> None:
    """A person's status decision (e.g. reinstating); the status machine restarts from it."""
    from hilt.quality.store import set_reviewer_status, status_note
    from hilt.store.db import transaction

    with options_named({"reason": "--reason", "actor": "--actor"}), \
            transaction(engine_for(db)) as session:
        set_reviewer_status(session, reviewer, status, actor=actor, reason=reason)
        note = status_note(session, reviewer, status)
    echo_json({"reviewer": reviewer, "status": status})
    if note:
        typer.echo(f"note: {note}", err=True)


def register(app: typer.Typer) -> None:
    """Add the ``quality`` sub-command group."""
    app.add_typer(quality_app, name="quality")
