"""``hilt quality``: aggregate answers into labels, measure agreement (thin shell)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

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
    per-reviewer estimated accuracy and, with --gold, gold accuracy with a 95% Wilson
    interval) on stdout, or to --report.
    """
    from hilt.quality.files import aggregate_file, write_report

    result = aggregate_file(answers, method.value, out, gold)
    text = write_report(result, report)
    if text is not None:
        typer.echo(text)


@quality_app.command("agreement")
def agreement(
    answers: Annotated[Path, typer.Argument(help="CSV with header item,reviewer,label")],
    metric: Annotated[MetricName, typer.Option(help="agreement metric")],
    level: Annotated[LevelName, typer.Option(
        help="Krippendorff's level of measurement")] = LevelName.nominal,
    weights: Annotated[KappaWeightName, typer.Option(
        help="Cohen's kappa disagreement weights")] = KappaWeightName.none,
    order: Annotated[str | None, typer.Option(
        help="comma-separated label order for ordinal use of non-numeric labels")] = None,
    resamples: Annotated[int, typer.Option(help="bootstrap resamples over items")] = 1000,
    confidence: Annotated[float, typer.Option(help="interval confidence level")] = 0.95,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
) -> None:
    """Print one JSON object: metric, value, ci_low, ci_high and counts (contract 2)."""
    from hilt.quality.files import agreement_file, to_json

    result = agreement_file(
        answers, metric.value, level.value,
        None if weights is KappaWeightName.none else weights.value,  # type: ignore[arg-type]
        order.split(",") if order else None, resamples, confidence, seed)
    typer.echo(to_json(result.as_dict()))


def register(app: typer.Typer) -> None:
    """Add the ``quality`` sub-command group."""
    app.add_typer(quality_app, name="quality")
