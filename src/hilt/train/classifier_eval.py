"""Labelled text files for classifiers, and their evaluation (contract 4).

Evaluation report: ``accuracy`` with a Wilson interval, per-class precision and recall
each with a Wilson interval (precision_c = TP_c / predicted_c, recall_c = TP_c /
actual_c), the confusion matrix, and for binary models the false-positive and
false-negative rates at the stored threshold (positive = ``classes_[1]``).

All of these are computed over distinct rows, as the training validation is
(:func:`hilt.train.classifier.distinct_rows`): identical rows (same text, context,
harmful flag and label) get the same prediction, so counting each copy would add
no information and shrink every Wilson interval. ``n`` counts the rows read,
``n_distinct`` the rows the figures rest on (``accuracy_ci.n``).

The report also gives the calibration of the probabilities (ECE with its interval and
bins, Brier score: :mod:`hilt.train.classifier_calibration`) over the distinct rows
whose label the model knows, and ``training_overlap``: the evaluated rows the model
trained on, known from the hashes its folder keeps (:func:`write_training_keys`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hilt.canonical import canonical_json, sha256_hex
from hilt.errors import InputError
from hilt.train.classifier import TextClassifier, distinct_rows, error_rates
from hilt.train.classifier_calibration import calibration_report
from hilt.train.stats import rate

# the model folder's record of what it trained on, for ``training_overlap``
TRAINING_KEYS_FILE = "training_texts.json"


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with labels, and per text the optional context and harmful-request flag."""

    texts: list[str]
    labels: list[Any]
    contexts: list[str] | None = None
    harmful: list[bool] | None = None


def label_text(label: Any) -> str:
    """The class name of a label: a string as it is, a whole number as the integer
    (``1`` and ``1.0`` are both ``"1"``), another number as Python writes it, a boolean
    as ``"true"``/``"false"`` (so ``true`` and ``"true"`` are one class, ``true`` and
    ``1`` are not). ``ValueError`` for anything else: null, objects, lists, NaN or
    infinities, blank strings."""
    if isinstance(label, bool):
        return "true" if label else "false"
    if isinstance(label, int):
        return str(label)
    if isinstance(label, float):
        if not math.isfinite(label):
            raise ValueError(f"must be a finite number, got {label}")
        return str(int(label)) if label.is_integer() else repr(label)
    if isinstance(label, str):
        if not label.strip():
            raise ValueError("blank label")
        return label
    raise ValueError("missing, or not a string/number/boolean")


def read_labelled(path: str | Path, text_field: str, label_field: str,
                  context_field: str | None = None,
                  harmful_field: str | None = None) -> LabelledTexts:
    """Labelled texts from JSONL; texts must be strings, labels strings, numbers or
    booleans (named by :func:`label_text`), the harmful-request field a JSON boolean.

    A blank text is a text like any other: a model that answers with nothing has still
    answered, and ``hilt check --scorer`` scores such a reply, so evaluation and training
    read it as well rather than refusing the file."""
    from hilt.jsonl import iter_json_objects
    from hilt.train.surrogates import refuse_lone_surrogates

    path = Path(path)
    # one field in two roles reads the same value twice (the label as the text makes
    # the task trivial; the text as its own context tells the model nothing)
    roles = {"--text-field": text_field, "--label-field": label_field,
             "--context-field": context_field, "--harmful-field": harmful_field}
    seen: dict[str, str] = {}
    for option, name in roles.items():
        if name is None:
            continue
        if name in seen:
            raise InputError(f"{name!r} is already read by {seen[name]}; each role needs "
                             "a field of its own", file=str(path), field=option)
        seen[name] = option
    texts, labels, contexts, harmful = [], [], [], []
    for number, obj in iter_json_objects(path):
        # only the fields read: other columns are ignored, whatever they hold
        refuse_lone_surrogates(obj, str(path), number,
                               filter(None, (text_field, context_field, label_field)))
        for name in filter(None, (text_field, context_field)):
            if not isinstance(obj.get(name), str):
                raise InputError("missing or not a string", file=str(path), line=number,
                                 field=name)
        if harmful_field and not isinstance(obj.get(harmful_field), bool):
            raise InputError("missing or not a boolean", file=str(path), line=number,
                             field=harmful_field)
        try:
            label = label_text(obj.get(label_field))
        except ValueError as exc:
            raise InputError(str(exc), file=str(path), line=number,
                             field=label_field) from None
        texts.append(obj[text_field])
        labels.append(label)
        if context_field:
            contexts.append(obj[context_field])
        if harmful_field:
            harmful.append(obj[harmful_field])
    if not texts:
        raise InputError("no labelled lines in file", file=str(path))
    return LabelledTexts(texts, labels, contexts if context_field else None,
                         harmful if harmful_field else None)


def accuracy_interval(acc: dict[str, Any], unit: str) -> dict[str, Any]:
    """A :func:`hilt.train.stats.rate` as ``accuracy_ci`` is written in the reward
    model's report: the Wilson bounds, the ``successes`` and the ``n`` (of ``unit``) the
    interval rests on."""
    return {"method": "wilson", "low": acc["ci_low"], "high": acc["ci_high"],
            "successes": acc["successes"], "n": acc["n"], "unit": unit}


def classification_report(truth: Sequence[str], predicted: Sequence[str],
                          classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy and per-class precision/recall with Wilson intervals (pure function)."""
    y, p = np.asarray(truth), np.asarray(predicted)
    labels = sorted(set(classes) | set(y.tolist()))
    report: dict[str, Any] = {"n": int(y.size)}
    acc = rate(int((y == p).sum()), int(y.size))
    report.update({"accuracy": acc["value"], "accuracy_ci_low": acc["ci_low"],
                   "accuracy_ci_high": acc["ci_high"],
                   "accuracy_ci": accuracy_interval(acc, "rows")})
    per_class = {}
    for label in labels:
        tp = int(((p == label) & (y == label)).sum())
        per_class[label] = {"precision": rate(tp, int((p == label).sum())),
                            "recall": rate(tp, int((y == label).sum())),
                            "support": int((y == label).sum())}
    report["per_class"] = per_class
    report["confusion"] = {t: {q: int(((y == t) & (p == q)).sum()) for q in labels}
                           for t in labels}
    return report


def evaluate_classifier(model: TextClassifier, texts: Sequence[str], labels: Sequence[str],
                        contexts: Sequence[str] | None = None,
                        harmful: Sequence[bool] | None = None,
                        train_keys: set[str] | None = None) -> dict[str, Any]:
    """The module's evaluation report over the distinct rows of the data (``n`` rows
    read, ``n_distinct`` used; ``accuracy_ci.n`` is ``n_distinct``), with the
    calibration of the probabilities over the distinct rows whose label the model knows
    (:mod:`hilt.train.classifier_calibration`). ``train_keys``
    (:func:`training_keys` of the model's training rows; None: unknown) gives
    ``training_overlap``."""
    proba: np.ndarray | None = None
    if hasattr(model, "predict_proba") and hasattr(model, "decide"):
        proba = model.predict_proba(texts, contexts, harmful)  # encoded once, for both
        predicted = model.decide(proba)
    else:  # a model that only labels (a stand-in): no calibration figures
        predicted = model.predict(texts, contexts, harmful)
    classes = [str(c) for c in model.classes_]
    unknown = sorted(set(labels) - set(classes))
    codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)[1]
    keep = distinct_rows(texts, codes, contexts, harmful)
    truth = [labels[i] for i in keep]
    guess = [predicted[i] for i in keep]
    report = classification_report(truth, guess, classes)
    report["accuracy_ci"]["unit"] = "distinct rows"
    report["n"] = len(texts)
    report["n_distinct"] = int(keep.size)
    report["unknown_labels"] = unknown
    # rows (distinct) whose label is none of the model's classes: each counts as an error
    report["unknown_label_rows"] = sum(label not in classes for label in truth)
    known = [i for i in keep if labels[i] in classes]
    if proba is not None:
        report.update(calibration_report(
            proba[known], np.array([classes.index(labels[i]) for i in known], dtype=int)))
    report["training_overlap"] = classifier_overlap(
        [training_key(texts[i], contexts[i] if contexts is not None else None)
         for i in keep], truth, guess, train_keys)
    if model.positive_label is not None:
        report["positive_label"] = model.positive_label
        report["threshold"] = model.threshold
        report.update(binary_error_rates(truth, guess, model.positive_label,
                                         [str(c) for c in model.classes_]))
    return report


def binary_error_rates(labels: Sequence[str], predicted: Sequence[str], positive: str,
                       classes: Sequence[str]) -> dict[str, Any]:
    """False-positive and false-negative rates over the rows whose label the model
    knows (pure function). A row labelled with another class (``partial`` for a
    refuse/comply model) is neither a positive nor a negative: counting it as a
    negative would blame the model for a class it never had; such rows are reported
    in ``unknown_labels`` and counted in ``error_rates_excluded``."""
    names = set(classes)
    known = np.array([t in names for t in labels], dtype=bool)
    truth = np.array([t == positive for t in labels], dtype=bool)[known]
    guess = np.array([q == positive for q in predicted], dtype=bool)[known]
    return {**error_rates(guess, truth), "error_rates_excluded": int((~known).sum())}


def training_key(text: str, context: str | None = None) -> str:
    """sha256 of what the model reads of a row: its context (or null) and its text."""
    return sha256_hex(canonical_json([context, text]))


def training_keys(rows: LabelledTexts) -> set[str]:
    contexts = rows.contexts if rows.contexts is not None else [None] * len(rows.texts)
    return {training_key(t, c) for t, c in zip(rows.texts, contexts, strict=True)}


def write_training_keys(folder: Path, rows: LabelledTexts) -> None:
    """Store the :func:`training_key` of every training row in the model folder (hashes,
    not texts), so that ``hilt eval classifier`` can tell which evaluated rows the model
    trained on."""
    data = {"key": "sha256 of the JSON array [context, text]",
            "hashes": sorted(training_keys(rows))}
    (folder / TRAINING_KEYS_FILE).write_text(json.dumps(data, indent=0))


def read_training_keys(folder: Path) -> set[str] | None:
    """The keys :func:`write_training_keys` stored; None for a model saved without them
    (trained before they were stored) or an unreadable file."""
    try:
        data = json.loads((Path(folder) / TRAINING_KEYS_FILE).read_text())
        return {str(h) for h in data["hashes"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def classifier_overlap(keys: Sequence[str], truth: Sequence[str], guess: Sequence[str],
                       train_keys: set[str] | None) -> dict[str, Any]:
    """The evaluated (distinct) rows the model trained on, ``in_train``, and its accuracy
    on the others, ``unseen``, as the reward model's ``training_overlap``: its accuracy
    on rows it trained on is optimistic. ``overlap: "unknown"`` (nulls) when the model's
    training rows are not known."""
    if train_keys is None:
        return {"overlap": "unknown", "in_train": None, "unseen": None}
    unseen = [i for i, key in enumerate(keys) if key not in train_keys]
    acc = rate(sum(truth[i] == guess[i] for i in unseen), len(unseen))
    return {"overlap": "known", "in_train": len(keys) - len(unseen),
            "unseen": {"n": acc["n"], "accuracy": acc["value"],
                       "accuracy_ci": accuracy_interval(acc, "distinct rows")}}
