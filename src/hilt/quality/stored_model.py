"""Checking a stored Dawid–Skene fit before anything uses it (pure, no database).

A row of ``quality_aggregation_models`` may have been edited by hand or written by an
older version: a NaN, an infinity (on PostgreSQL, whose JSONB has neither, a literal
too large for a float), a missing list or entry, or text where a number belongs would
otherwise surface as a traceback far from the row (a zip of unequal lists, a float of a
string), as a NaN posterior that quietly decides labels, or as a NaN in a JSON reply.
:func:`check_stored_model` is the one place every reader goes through (the workflow's
aggregator, the model listing, the reviewer report): it returns the parameters as
arrays of the right shapes, or raises :class:`StoredModelError` naming the model, its
rubric and question, and the field at fault (``confusion.0.1.2``). The same check runs
on a new fit before it is stored, so hilt never writes such a row itself.

The two settings that score tasks (``min_reviewer_answers``, ``min_confidence``) take
their defaults when the recorded settings lack them (a fit recorded before they
existed stays usable); every number in the recorded settings must still be finite, as
the model listing returns them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hilt.errors import Conflict
from hilt.quality.answers import FloatArray, IntArray
from hilt.quality.model_aggregator import ModelAggregationConfig

REFIT_ADVICE = ("a refit (hilt quality refresh, or POST /v1/quality/refresh) stores a "
                "usable model in its place")
# Counts are read into int64 arrays.
_MAX_COUNT = 2**63 - 1
# A sum of posteriors may pass 0 or the answers by a rounding residue (as
# hilt.quality.calibration.expected_count_interval allows).
_ROUNDING = 1e-9
_DEFAULTS = ModelAggregationConfig()


class StoredModelError(Conflict):
    """A stored aggregation model that cannot be used: names the model and the field."""

    def __init__(self, model_id: Any, rubric_id: Any, question_id: Any, field: str,
                 reason: str, advice: str = REFIT_ADVICE) -> None:
        self.model_id, self.field, self.reason = model_id, field, reason
        super().__init__(f"aggregation model {model_id} (rubric {rubric_id!r}, question "
                         f"{question_id!r}): field '{field}' {reason}; {advice}")


@dataclass(frozen=True)
class StoredModel:
    """The checked parameters of one stored fit.

    ``confusion[w, c, l]``: P(reviewer ``w`` answers ``classes[l]`` | truth
    ``classes[c]``); ``priors[c]``; per reviewer the answers in the fit and the expected
    number of them that were correct."""

    model_id: str
    rubric_id: str
    question_id: str
    rubric_versions: tuple[int, ...]
    classes: tuple[str, ...]
    reviewers: tuple[str, ...]
    confusion: FloatArray
    priors: FloatArray
    reviewer_answers: IntArray
    reviewer_expected_correct: FloatArray
    n_items: int
    n_answers: int
    n_gold_items: int
    n_iter: int
    config: dict[str, Any]
    min_reviewer_answers: int
    min_confidence: float


class _Bad(Exception):
    """A problem found at ``field``; turned into a :class:`StoredModelError`."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field, self.reason = field, reason


def _too_large(value: Any) -> bool:
    """An integer beyond the range of a float (how PostgreSQL returns ``1e400``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    try:
        float(value)
    except OverflowError:
        return True
    return False


def _shown(value: Any) -> str:
    """``value`` in a message: short, and without the digits of a huge integer."""
    if value is None:
        return "null"
    if _too_large(value):
        return "a number too large for a float"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(field: str, value: Any, low: float, high: float, bounds: str = "") -> float:
    """A finite number (not a bool) in [low, high] (``bounds`` says so in words)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(field, f"must be a number, not {_shown(value)}")
    if _too_large(value) or not math.isfinite(value):
        raise _Bad(field, f"must be a finite number, not {_shown(value)}")
    if not low <= value <= high:
        raise _Bad(field, f"must lie {bounds or f'in [{low:g}, {high:g}]'}, not "
                          f"{_shown(value)}")
    return float(value)


def _count(field: str, value: Any) -> int:
    """A whole number >= 0 (a float with an integral value, as JSON may give it, too)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(field, f"must be a whole number, not {_shown(value)}")
    if value < 0:
        raise _Bad(field, f"must be at least 0, not {value}")
    if value > _MAX_COUNT:
        raise _Bad(field, "is too large (at most 2**63 - 1)")
    return value


def _list(field: str, value: Any, length: int | None = None, what: str = "") -> list[Any]:
    if value is None:
        raise _Bad(field, "is missing")
    if not isinstance(value, list):
        raise _Bad(field, f"must be a list, not {_shown(value)}")
    if length is not None and len(value) != length:
        raise _Bad(field, f"has {len(value)} entries, not {length} ({what})")
    return value


def _names(field: str, value: Any) -> tuple[str, ...]:
    entries = _list(field, value)
    for i, entry in enumerate(entries):
        if not isinstance(entry, str):
            raise _Bad(f"{field}.{i}", f"must be text, not {_shown(entry)}")
    if len(set(entries)) != len(entries):
        raise _Bad(field, "repeats an entry")
    return tuple(entries)


def _finite_json(field: str, value: Any) -> None:
    """Every number inside ``value`` is finite (it is returned as JSON)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            _finite_json(f"{field}.{key}", inner)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            _finite_json(f"{field}.{i}", inner)
    elif (isinstance(value, float) and not math.isfinite(value)) or _too_large(value):
        raise _Bad(field, f"must be a finite number, not {_shown(value)}")


def check_versions(model_id: Any, rubric_id: Any, question_id: Any, value: Any, *,
                   advice: str = REFIT_ADVICE) -> tuple[int, ...]:
    """The rubric versions a stored fit covers (whole numbers), or a
    :class:`StoredModelError` naming the field ``rubric_versions``."""
    try:
        return tuple(_count(f"rubric_versions.{i}", v)
                     for i, v in enumerate(_list("rubric_versions", value)))
    except _Bad as bad:
        raise StoredModelError(model_id, rubric_id, question_id, bad.field, bad.reason,
                               advice) from None


def check_stored_model(values: Mapping[str, Any], *, advice: str = REFIT_ADVICE
                       ) -> StoredModel:
    """The checked parameters of a stored fit given its row's values by column name, or
    a :class:`StoredModelError` naming the first field at fault (``advice`` ends its
    message: what the user can do)."""
    model_id, rubric_id, question_id = (values.get(k) for k in ("id", "rubric_id",
                                                                 "question_id"))
    versions = check_versions(model_id, rubric_id, question_id,
                              values.get("rubric_versions"), advice=advice)
    try:
        return _checked(values, versions)
    except _Bad as bad:
        raise StoredModelError(model_id, rubric_id, question_id, bad.field, bad.reason,
                               advice) from None


def _checked(values: Mapping[str, Any], versions: tuple[int, ...]) -> StoredModel:
    classes = _names("classes", values.get("classes"))
    if not classes:
        raise _Bad("classes", "is empty")
    reviewers = _names("reviewers", values.get("reviewers"))
    n_r, n_c = len(reviewers), len(classes)
    per_reviewer = "one per reviewer"
    confusion = np.empty((n_r, n_c, n_c), dtype=np.float64)
    matrices = _list("confusion", values.get("confusion"), n_r, per_reviewer)
    for w, matrix in enumerate(matrices):
        rows = _list(f"confusion.{w}", matrix, n_c, "one per class")
        for c, row in enumerate(rows):
            cells = _list(f"confusion.{w}.{c}", row, n_c, "one per class")
            for j, cell in enumerate(cells):
                confusion[w, c, j] = _number(f"confusion.{w}.{c}.{j}", cell, 0.0, 1.0)
    priors = np.array([_number(f"priors.{c}", p, 0.0, 1.0) for c, p in enumerate(
        _list("priors", values.get("priors"), n_c, "one per class"))], dtype=np.float64)
    answers = [_count(f"reviewer_answers.{w}", n) for w, n in enumerate(
        _list("reviewer_answers", values.get("reviewer_answers"), n_r, per_reviewer))]
    expected = [_number(f"reviewer_expected_correct.{w}", e,
                        -_ROUNDING * max(n, 1), n + _ROUNDING * max(n, 1),
                        f"between 0 and the reviewer's {n} answers")
                for w, (e, n) in enumerate(zip(
                    _list("reviewer_expected_correct",
                          values.get("reviewer_expected_correct"), n_r, per_reviewer),
                    answers, strict=True))]
    counts = {name: _count(name, values.get(name))
              for name in ("n_items", "n_answers", "n_gold_items", "n_iter")}
    config = values.get("config")
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise _Bad("config", f"must be an object of settings, not {_shown(config)}")
    _finite_json("config", config)
    min_answers = _count("config.min_reviewer_answers",
                         config.get("min_reviewer_answers",
                                    _DEFAULTS.min_reviewer_answers))
    min_confidence = _number("config.min_confidence",
                             config.get("min_confidence", _DEFAULTS.min_confidence), 0.0, 1.0)
    return StoredModel(
        model_id=str(values.get("id")), rubric_id=str(values.get("rubric_id")),
        question_id=str(values.get("question_id")), rubric_versions=versions,
        classes=classes, reviewers=reviewers, confusion=confusion, priors=priors,
        reviewer_answers=np.array(answers, dtype=np.int64),
        reviewer_expected_correct=np.array(expected, dtype=np.float64),
        n_items=counts["n_items"], n_answers=counts["n_answers"],
        n_gold_items=counts["n_gold_items"], n_iter=counts["n_iter"], config=config,
        min_reviewer_answers=min_answers, min_confidence=min_confidence)
