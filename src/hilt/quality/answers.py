"""Long-format answers ``(item, reviewer, label)`` encoded once as integer arrays.

Every aggregator and agreement metric works on the same encoding: three integer code
arrays of equal length (one entry per answer) plus the lookup tables that turn codes back
into the caller's identifiers. Encoding happens once, outside any iterative loop, with
hash-based factorisation (``pandas.factorize``), so that the inner loops only ever see
contiguous ``int64`` arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _sorted_classes(values: np.ndarray) -> np.ndarray:
    """Distinct labels in sorted order; first-appearance order when they do not sort."""
    uniques = pd.unique(values)
    try:
        return np.asarray(sorted(uniques.tolist()), dtype=values.dtype)
    except TypeError:  # mixed types (e.g. 1 and "a") have no order
        return np.asarray(uniques, dtype=values.dtype)


@dataclass(frozen=True)
class Answers:
    """Answers in long format, one entry per (item, reviewer, label) answer.

    ``item_index[k]``, ``reviewer_index[k]`` and ``label_index[k]`` are codes into
    ``items``, ``reviewers`` and ``classes``. Items and reviewers keep their order of first
    appearance; classes are sorted (this order is also the last tie-breaker everywhere).
    """

    item_index: IntArray
    reviewer_index: IntArray
    label_index: IntArray
    items: np.ndarray
    reviewers: np.ndarray
    classes: np.ndarray

    @property
    def n_answers(self) -> int:
        return int(self.item_index.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.items.shape[0])

    @property
    def n_reviewers(self) -> int:
        return int(self.reviewers.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.classes.shape[0])

    @classmethod
    def from_columns(cls, items: Sequence[Any] | np.ndarray, reviewers: Sequence[Any] | np.ndarray,
                     labels: Sequence[Any] | np.ndarray,
                     classes: Iterable[Any] | None = None) -> Answers:
        """Encode three equally long columns.

        ``classes`` fixes the label set and its order (needed for ordinal data, or to
        include a label nobody used, such as a gold label); labels outside it are an error.
        """
        item_values = np.asarray(items)
        reviewer_values = np.asarray(reviewers)
        label_values = np.asarray(labels)
        if not item_values.shape == reviewer_values.shape == label_values.shape:
            raise ValueError("items, reviewers and labels must have the same length")
        if item_values.ndim != 1:
            raise ValueError("answers must be one-dimensional columns")
        item_codes, item_uniques = pd.factorize(item_values)
        reviewer_codes, reviewer_uniques = pd.factorize(reviewer_values)
        class_values = (_sorted_classes(label_values) if classes is None
                        else np.asarray(list(classes)))
        if classes is not None and pd.Index(class_values).has_duplicates:
            # Each class needs one code; pandas cannot index labels by a repeated class.
            raise ValueError("classes must not repeat a label")
        label_codes = pd.Index(class_values).get_indexer(label_values)
        if label_codes.size and label_codes.min() < 0:
            bad = label_values[label_codes < 0][0]
            raise ValueError(f"label {bad!r} is not one of the given classes")
        return cls(item_index=np.asarray(item_codes, dtype=np.int64),
                   reviewer_index=np.asarray(reviewer_codes, dtype=np.int64),
                   label_index=np.asarray(label_codes, dtype=np.int64),
                   items=np.asarray(item_uniques), reviewers=np.asarray(reviewer_uniques),
                   classes=class_values)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, item: str = "item", reviewer: str = "reviewer",
                   label: str = "label", classes: Iterable[Any] | None = None) -> Answers:
        """Encode a DataFrame with ``item``, ``reviewer`` and ``label`` columns."""
        return cls.from_columns(frame[item].to_numpy(), frame[reviewer].to_numpy(),
                                frame[label].to_numpy(), classes=classes)

    def with_classes(self, extra: Iterable[Any]) -> Answers:
        """The same answers with ``extra`` labels added to the class set (re-sorted)."""
        known = set(self.classes.tolist())
        missing = [value for value in extra if value not in known]
        if not missing:
            return self
        combined = np.asarray(list(self.classes.tolist()) + missing)
        new_classes = _sorted_classes(combined)
        remap = pd.Index(new_classes).get_indexer(self.classes)
        return Answers(self.item_index, self.reviewer_index,
                       np.asarray(remap, dtype=np.int64)[self.label_index], self.items,
                       self.reviewers, new_classes)

    def encode_gold(self, gold: Mapping[Any, Any] | pd.Series) -> tuple[IntArray, IntArray]:
        """Codes ``(item_index, class_index)`` of gold items that appear in the answers.

        Gold items nobody answered are skipped; call :meth:`with_classes` first when a gold
        label may be missing from ``classes``.
        """
        series = gold if isinstance(gold, pd.Series) else pd.Series(dict(gold), dtype=object)
        if series.empty:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy()
        item_codes = pd.Index(self.items).get_indexer(series.index.to_numpy())
        class_codes = pd.Index(self.classes).get_indexer(series.to_numpy())
        if (class_codes[item_codes >= 0] < 0).any():
            raise ValueError("a gold label is not among the classes; use with_classes()")
        keep = item_codes >= 0
        return (np.asarray(item_codes[keep], dtype=np.int64),
                np.asarray(class_codes[keep], dtype=np.int64))


def as_answers(data: Answers | pd.DataFrame) -> Answers:
    """Accept either an :class:`Answers` or a DataFrame with item/reviewer/label columns."""
    if isinstance(data, Answers):
        return data
    if isinstance(data, pd.DataFrame):
        return Answers.from_frame(data)
    raise TypeError("answers must be an Answers object or a DataFrame with "
                    "item, reviewer and label columns")


def vote_counts(answers: Answers, weights: FloatArray | None = None) -> FloatArray:
    """Matrix ``n_items × n_classes`` of (optionally weighted) votes, via one bincount."""
    flat = answers.item_index * answers.n_classes + answers.label_index
    counts = np.bincount(flat, weights=weights, minlength=answers.n_items * answers.n_classes)
    return counts.reshape(answers.n_items, answers.n_classes).astype(np.float64, copy=False)
