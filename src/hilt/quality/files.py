"""File-level use cases behind ``hilt quality aggregate`` and ``hilt quality agreement``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hilt.canonical import finite_json
from hilt.errors import InputError
from hilt.quality._base import ClassificationAggregator
from hilt.quality._scale import ScaleAggregator
from hilt.quality.agreement import KappaWeights
from hilt.quality.answers import Answers
from hilt.quality.bias_corrected_mean import BiasCorrectedMean
from hilt.quality.bootstrap import (
    AgreementResult,
    Metric,
    UnfitChoice,
    measure_agreement,
    min_resamples,
)
from hilt.quality.calibration import expected_count_interval, wilson_interval
from hilt.quality.csv_io import (
    CsvColumns,
    GoldFile,
    OutputFiles,
    check_output,
    first_duplicate_pair,
    label_number,
    numeric_labels,
    read_answers,
    read_gold,
    write_text_atomic,
)
from hilt.quality.dawid_skene import DawidSkene
from hilt.quality.krippendorff import Level
from hilt.quality.mace import MACE
from hilt.quality.majority_vote import MajorityVote
from hilt.quality.median_rating import MedianRating
from hilt.quality.one_coin_dawid_skene import OneCoinDawidSkene

CATEGORICAL_METHODS: dict[str, type[ClassificationAggregator]] = {
    "mv": MajorityVote, "ds": DawidSkene, "one-coin": OneCoinDawidSkene, "mace": MACE}
SCALE_METHODS: dict[str, type[ScaleAggregator]] = {
    "median": MedianRating, "mean": BiasCorrectedMean}
METHODS = (*CATEGORICAL_METHODS, *SCALE_METHODS)


def _gold_number(gold: GoldFile, item: str) -> float:
    """The gold label of ``item`` as a number within the label range (scale methods)."""
    value, problem = label_number(gold.labels[item])
    if value is None:
        raise InputError(f"gold label {gold.labels[item]!r} {problem}", file=gold.path,
                         line=gold.lines[item], field="label")
    return value


def _reviewer_gold_accuracy(table: CsvColumns, gold: GoldFile | None,
                            estimated: dict[str, float], estimate_name: str,
                            ratings: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per-reviewer answer counts, the model's estimate with its interval, and gold
    accuracy. With ``ratings`` (the answers as numbers, scale methods) an answer is right
    when it equals the gold label as a number, so "4.0" matches gold "4"; categorical
    labels compare as text.

    The estimate (Dawid–Skene / one-coin accuracy, MACE competence) gets the interval
    ``hilt quality reviewers`` gives the same quantity: Wilson's on the expected count
    ``estimate × n_answers`` (:func:`hilt.quality.calibration.expected_count_interval`),
    as ``estimated_ci_low`` / ``estimated_ci_high``; it covers the sampling of the
    reviewer's answers, not the model's own estimation error."""
    frame = pd.DataFrame({"reviewer": table.columns["reviewer"]})
    frame["n_answers"] = 1
    if gold is not None:
        item_column = pd.Series(table.columns["item"])
        known = item_column.map(gold.labels)
        frame["n_gold"] = known.notna().astype(int)
        if ratings is None:
            correct = known == pd.Series(table.columns["label"])
        else:
            numbers = {item: _gold_number(gold, item) for item in set(item_column)
                       if item in gold.labels}
            correct = item_column.map(numbers) == pd.Series(ratings)
        frame["gold_correct"] = correct.astype(int)
    grouped = frame.groupby("reviewer", sort=True).sum()
    rows: list[dict[str, Any]] = []
    for reviewer, counts in grouped.iterrows():
        row: dict[str, Any] = {"reviewer": reviewer, "n_answers": int(counts["n_answers"])}
        if reviewer in estimated:
            value = estimated[str(reviewer)]
            _, est_low, est_high = expected_count_interval(value * row["n_answers"],
                                                           row["n_answers"])
            row[estimate_name] = round(value, 6)
            row.update(estimated_ci_low=round(est_low, 6), estimated_ci_high=round(est_high, 6))
        if gold is not None:
            n_gold, right = int(counts["n_gold"]), int(counts["gold_correct"])
            low, high = wilson_interval(right, n_gold)
            row.update(n_gold=n_gold, gold_correct=right,
                       gold_accuracy=right / n_gold if n_gold else None,
                       ci_low=round(float(low), 6), ci_high=round(float(high), 6))
        rows.append(row)
    return rows


def _same_file(first: Path | str, second: Path | str) -> bool:
    """Whether two paths name one file: the same resolved path (links followed), or, for
    files that exist, the same file on disk (hard links, case-insensitive folders)."""
    a, b = Path(first), Path(second)
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _refuse_overwriting_inputs(output: Path | str, option: str,
                               inputs: dict[str, Path | str | None]) -> None:
    """An output that names an input file would replace the data it is computed from."""
    for name, source in inputs.items():
        if source is not None and _same_file(output, source):
            raise InputError(f"would overwrite the {name} input file {source}",
                             file=str(output), field=option)


def aggregate_file(answers_path: Path | str, method: str, out_path: Path | str,
                   gold_path: Path | str | None = None,
                   report_path: Path | str | None = None) -> dict[str, Any]:
    """Aggregate an answers CSV into ``item,label,confidence`` rows; return the report.

    All input is read and validated, and every output path checked, before anything is
    written; the labels file (and, with ``report_path``, the JSON report) are written
    atomically and together: a failure leaves neither. With gold, gold items are clamped
    to their known label (confidence 1) and the report lists each reviewer's gold
    accuracy with a 95% Wilson interval.
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; use one of {', '.join(METHODS)}",
                         field="method")
    check_output(out_path, "--out")
    inputs = {"ANSWERS": answers_path, "--gold": gold_path}
    _refuse_overwriting_inputs(out_path, "--out", inputs)
    if report_path is not None:
        check_output(report_path, "--report")
        _refuse_overwriting_inputs(report_path, "--report", inputs)
        if _same_file(report_path, out_path):
            raise InputError("the report would overwrite the labels file",
                             file=str(report_path), field="--report")
    table = read_answers(answers_path)
    gold = read_gold(gold_path) if gold_path is not None else None
    items, reviewers = table.columns["item"], table.columns["reviewer"]
    report: dict[str, Any] = {"method": method, "answers": str(answers_path),
                              "out": str(out_path), "n_answers": len(table)}
    estimated: dict[str, float] = {}
    estimate_name = "estimated_accuracy"
    ratings: np.ndarray | None = None
    if method in SCALE_METHODS:
        ratings = numeric_labels(table, f"method {method} aggregates numbers")
        answers = Answers.from_columns(np.asarray(items, dtype=object),
                                       np.asarray(reviewers, dtype=object), ratings)
        scale_model = SCALE_METHODS[method]().fit(answers)
        values, confidence = scale_model.values_.copy(), scale_model.confidence_.copy()
        if gold is not None:
            positions = pd.Index(scale_model.items_).get_indexer(list(gold.labels))
            for item, position in zip(gold.labels, positions, strict=True):
                if position < 0:
                    continue
                values[position] = _gold_number(gold, item)
                confidence[position] = 1.0
        if isinstance(scale_model, BiasCorrectedMean):
            report.update(iterations=scale_model.n_iter_, converged=scale_model.converged_)
        labels = [format(value, ".10g") for value in values]
        item_ids = scale_model.items_
    else:
        answers = Answers.from_columns(np.asarray(items, dtype=object),
                                       np.asarray(reviewers, dtype=object),
                                       np.asarray(table.columns["label"], dtype=object))
        model = CATEGORICAL_METHODS[method]()
        model.fit(answers, gold.labels if gold is not None else None)
        labels, confidence, item_ids = list(model.labels_), model.confidence_, model.items_
        report["classes"] = [str(value) for value in model.classes_]
        if isinstance(model, DawidSkene | OneCoinDawidSkene | MACE):
            report.update(iterations=model.n_iter_, converged=model.converged_)
            accuracy = (model.competence_ if isinstance(model, MACE)
                        else model.reviewer_accuracy_)
            if isinstance(model, MACE):
                estimate_name = "estimated_competence"
            estimated = {str(reviewer): float(value) for reviewer, value
                         in zip(model.reviewers_, accuracy, strict=True)}
    report["n_items"] = len(item_ids)
    report["n_reviewers"] = len(set(reviewers))
    report["mean_confidence"] = (round(float(np.mean(confidence)), 6) if len(item_ids)
                                 else None)
    if gold is not None:
        answered = set(items)
        report["gold"] = {"file": gold.path, "n_items": len(gold.labels),
                          "n_items_answered": sum(item in answered for item in gold.labels)}
    report["reviewers"] = _reviewer_gold_accuracy(table, gold, estimated, estimate_name,
                                                  ratings)
    with OutputFiles() as outputs:
        outputs.add_csv(out_path, ("item", "label", "confidence"),
                        ((item, label, format(float(conf), ".6f"))
                         for item, label, conf in zip(item_ids, labels, confidence,
                                                      strict=True)), "--out")
        if report_path is not None:
            outputs.add_text(report_path, to_json(report) + "\n", "--report")
        outputs.commit()
    return report


def agreement_file(answers_path: Path | str, metric: Metric, level: Level = "nominal",
                   kappa_weights: KappaWeights = None, order: list[str] | None = None,
                   n_resamples: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> AgreementResult:
    """Agreement of an answers CSV with a bootstrap interval.

    Ordered uses (Krippendorff ordinal/interval/ratio, weighted Cohen) need an order of
    the labels: numbers are ordered numerically; other labels need ``order``. A reviewer
    answering the same item twice is an error (agreement is defined per reviewer and item).
    """
    # The options are checked before the file is read, so an error names the option
    # rather than a field of the file.
    if not 0 < confidence < 1:
        raise InputError(f"confidence must lie strictly between 0 and 1, not {confidence}",
                         field="--confidence")
    needed = min_resamples(confidence)
    if n_resamples < needed:
        # Fewer resamples than this leave a tail of the percentile interval empty.
        raise InputError(f"resamples must be at least {needed} for a {confidence:g} "
                         f"interval (ceil(2 / (1 - confidence))), not {n_resamples}",
                         field="--resamples")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        # numpy seeds only with non-negative integers; its own message names no option.
        raise InputError(f"seed must be an integer of at least 0, not {seed!r}",
                         field="--seed")
    if order is not None:
        # Trimmed like the CSV values they are compared with ("low, mid" is "low","mid").
        order = [label.strip() for label in order]
        if any(not label for label in order):
            raise InputError("a label is empty", field="--order")
        repeated = sorted({label for label in order if order.count(label) > 1})
        if repeated:
            # A label listed twice has no single rank.
            raise InputError(f"label(s) listed more than once: {', '.join(map(repr, repeated))}",
                             field="--order")
    table = read_answers(answers_path)
    duplicate = first_duplicate_pair(table)
    if duplicate is not None:
        raise InputError("the same reviewer answers this item twice", file=table.path,
                         line=duplicate, field="reviewer")
    needs_numbers = metric == "krippendorff" and level in ("interval", "ratio")
    needs_order = needs_numbers or (metric == "krippendorff" and level == "ordinal") or (
        metric == "cohen" and kappa_weights is not None)
    labels: np.ndarray = np.asarray(table.columns["label"], dtype=object)
    classes: list[Any] | None = None
    if order and not needs_numbers:
        classes = list(order)
        outside = [i for i, label in enumerate(labels) if label not in set(classes)]
        if outside:
            raise InputError(f"label {labels[outside[0]]!r} is not in --order", file=table.path,
                             line=table.lines[outside[0]], field="label")
    elif needs_order:
        labels = numeric_labels(table, "this metric needs ordered labels: use numbers"
                                + ("" if needs_numbers else " or give --order"))
        negative = (np.flatnonzero(labels < 0) if level == "ratio" and needs_numbers
                    else np.zeros(0, dtype=np.int64))
        if negative.size:
            # The ratio distance ((c-k)/(c+k))^2 takes -3 and 3 for equal.
            first = int(negative[0])
            raise InputError(f"label {table.columns['label'][first]!r} is negative: ratio "
                             "alpha needs values of at least 0 (use --level interval for a "
                             "scale without an absolute zero)", file=table.path,
                             line=table.lines[first], field="label")
    answers = Answers.from_columns(np.asarray(table.columns["item"], dtype=object),
                                   np.asarray(table.columns["reviewer"], dtype=object), labels,
                                   classes=classes)
    try:
        return measure_agreement(answers, metric, level, kappa_weights, n_resamples,
                                 confidence, seed)
    except UnfitChoice as exc:  # the option to change, not a field of the file
        raise InputError(str(exc), file=table.path,
                         field=_OPTIONS.get(exc.option, exc.option)) from exc
    except ValueError as exc:  # what the checks above leave: no one field to name
        raise InputError(str(exc), file=table.path) from exc


# the command-line option of each choice of :func:`agreement_file`
_OPTIONS = {"metric": "--metric", "level": "--level", "kappa_weights": "--weights"}


def to_json(value: Any, indent: int | None = None) -> str:
    """JSON text with non-finite numbers as null (JSON has no NaN)."""
    return json.dumps(finite_json(value), ensure_ascii=False, default=str, allow_nan=False,
                      indent=indent)


def write_report(report: dict[str, Any], path: Path | str | None) -> str | None:
    """Write the report to ``path`` (atomically) or return the text for stdout."""
    text = to_json(report)
    if path is None:
        return text
    write_text_atomic(path, text + "\n", "--report")
    return None
