"""Long-format answers ``(item, reviewer, label)`` encoded once as integer arrays.

Every aggregator and agreement metric works on the same encoding: three integer code
arrays of equal length (one entry per answer) plus the lookup tables that turn codes back
into the caller's identifiers. Encoding happens once, outside any iterative loop, with
hash-based factorisation (``pandas.factorize``), so that the inner loops only ever see
contiguous ``int64`` arrays.

**Label types.** Labels keep their type (numbers stay numbers, so scale aggregators and
ordered metrics see values), but one label set never mixes types: a label column holding
both numbers and text, or a gold label of another type that is not among the answers'
labels (``"unsafe"`` with labels ``0``/``1``), turns every label into its text
(``str``). A gold label (or gold item, or label checked against ``classes``) of another
type than the answers' is matched by value first: ``"1"`` finds the label ``1``, ``"1.5"``
the label ``1.5``, ``7`` the text label ``"7"``. A label that still matches nothing is
an :class:`~hilt.errors.InputError`, never a negative code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from hilt.errors import InputError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _kind(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | float | np.number):
        return "number"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


def _mixed(values: Iterable[Any]) -> bool:
    """Whether the values mix numbers, text and other types."""
    return len({_kind(value) for value in values}) > 1


def _as_text(values: Iterable[Any]) -> np.ndarray:
    return np.asarray([str(value) for value in values], dtype=object)


def _codes(known: np.ndarray, values: Sequence[Any] | np.ndarray) -> IntArray:
    """Position of each value in ``known`` (-1 where absent), matching a value of another
    type by what it means: text that reads as a number finds a numeric entry, anything
    else finds the entry with the same text."""
    wanted = np.asarray(values, dtype=object)
    codes = np.asarray(pd.Index(known).get_indexer(wanted), dtype=np.int64)
    missing = np.flatnonzero(codes < 0)
    if not missing.size or not known.size:
        return codes
    numeric = known.dtype.kind in "iuf"
    text: dict[str, int] = {}
    for position, entry in enumerate(known.tolist()):
        text.setdefault(str(entry), position)
    for k in missing:
        value = wanted[k]
        if numeric and isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                continue
            hits = np.flatnonzero(known == number)
            if hits.size:
                codes[k] = int(hits[0])
        elif not isinstance(value, str) or not numeric:
            codes[k] = text.get(str(value), -1)
    return codes


def _first_missing(values: np.ndarray) -> int | None:
    """Position of the first missing value (``None``, NaN, ``pd.NA``), if any.

    ``pd.read_csv`` turns a blank cell into NaN; passed on, NaN would become a class of
    its own (or a ``-1`` code from ``pd.factorize``) and silently change every result."""
    if values.dtype.kind not in "fcOmM":
        return None  # integer, boolean and fixed-width text arrays cannot hold a gap
    missing = np.flatnonzero(np.asarray(pd.isna(values), dtype=bool))
    return int(missing[0]) if missing.size else None


def _as_number(value: Any) -> float | None:
    """``value`` as a finite number: a number, or text that reads as one; else None."""
    if _kind(value) not in ("number", "bool") and not isinstance(value, str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if np.isfinite(number) else None


def numeric_order(values: Sequence[Any] | np.ndarray) -> IntArray | None:
    """The permutation that sorts ``values`` by number when every value is a number or
    text that reads as one (``"9" < "10"``); None when some value is not, because then
    only the caller knows the order (sorting text would put ``"high"`` before ``"low"``)."""
    numbers = [_as_number(value) for value in np.asarray(values, dtype=object).tolist()]
    if any(number is None for number in numbers):
        return None
    return np.asarray(np.argsort(np.asarray(numbers, dtype=np.float64), kind="stable"),
                      dtype=np.int64)


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
    appearance; classes are sorted (this order is also the last tie-breaker everywhere),
    or in the order the caller gave (``classes_given``).
    """

    item_index: IntArray
    reviewer_index: IntArray
    label_index: IntArray
    items: np.ndarray
    reviewers: np.ndarray
    classes: np.ndarray
    classes_given: bool = False

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
        A missing value (``None`` or NaN, e.g. a blank cell read by ``pd.read_csv``) in
        any column is an :class:`~hilt.errors.InputError` naming its row position
        (counting from 0) and the column: drop or fill incomplete answers first.
        """
        item_values = np.asarray(items)
        reviewer_values = np.asarray(reviewers)
        label_values = np.asarray(labels)
        if not item_values.shape == reviewer_values.shape == label_values.shape:
            raise ValueError("items, reviewers and labels must have the same length")
        if item_values.ndim != 1:
            raise ValueError("answers must be one-dimensional columns")
        for name, column in (("item", item_values), ("reviewer", reviewer_values),
                             ("label", label_values)):
            position = _first_missing(column)
            if position is not None:
                raise InputError(f"missing {name} (blank or NaN) at row position {position} "
                                 "(counting from 0); drop or fill incomplete answers first",
                                 field=name)
        if label_values.dtype.kind == "O" and _mixed(label_values.tolist()):
            label_values = _as_text(label_values.tolist())  # one type per label set
        item_codes, item_uniques = pd.factorize(item_values)
        reviewer_codes, reviewer_uniques = pd.factorize(reviewer_values)
        class_values = (_sorted_classes(label_values) if classes is None
                        else np.asarray(list(classes)))
        if classes is not None and pd.Index(class_values).has_duplicates:
            # Each class needs one code; pandas cannot index labels by a repeated class.
            raise ValueError("classes must not repeat a label")
        label_codes = _codes(class_values, label_values)
        if label_codes.size and label_codes.min() < 0:
            bad = label_values[label_codes < 0][0]
            raise InputError(f"label {bad!r} is not one of the given classes",
                             field="label")
        return cls(item_index=np.asarray(item_codes, dtype=np.int64),
                   reviewer_index=np.asarray(reviewer_codes, dtype=np.int64),
                   label_index=np.asarray(label_codes, dtype=np.int64),
                   items=np.asarray(item_uniques), reviewers=np.asarray(reviewer_uniques),
                   classes=class_values, classes_given=classes is not None)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, item: str = "item", reviewer: str = "reviewer",
                   label: str = "label", classes: Iterable[Any] | None = None) -> Answers:
        """Encode a DataFrame with ``item``, ``reviewer`` and ``label`` columns."""
        return cls.from_columns(frame[item].to_numpy(), frame[reviewer].to_numpy(),
                                frame[label].to_numpy(), classes=classes)

    def with_classes(self, extra: Iterable[Any]) -> Answers:
        """The same answers with ``extra`` labels added to the class set (re-sorted).

        A label of another type that means a known class is that class; an unknown one
        of another type turns every class into its text (see the module docstring)."""
        values = list(extra)
        for value in values:
            if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
                raise InputError("a gold label is missing", field="gold")
        codes = _codes(self.classes, values)
        missing: list[Any] = []
        for value, code in zip(values, codes, strict=True):
            if code < 0 and value not in missing:
                missing.append(value)
        if not missing:
            return self
        combined: list[Any] = list(self.classes.tolist()) + missing
        if _mixed(combined):
            combined = list(dict.fromkeys(str(value) for value in combined))
        new_classes = _sorted_classes(np.asarray(combined))
        remap = _codes(new_classes, self.classes)
        if remap.size and remap.min() < 0:  # cannot happen: every old class is kept
            raise InputError("a label was lost while adding gold labels", field="gold")
        return Answers(self.item_index, self.reviewer_index, remap[self.label_index],
                       self.items, self.reviewers, new_classes)

    def in_order(self, use: str) -> Answers:
        """The same answers with the classes in their order, for ``use`` (a metric that
        compares label positions): the order given as ``classes``, else the numeric order
        when every label is a number or reads as one (``"9" < "10"``). Text labels
        without a given order are a ``ValueError``: their sorted order is alphabetical,
        not meaningful (``"high" < "low" < "mid"``)."""
        if self.classes_given:
            return self
        order = numeric_order(self.classes)
        if order is None:
            shown = ", ".join(repr(value) for value in self.classes.tolist()[:5])
            raise ValueError(f"{use} needs ordered labels, but the labels ({shown}"
                             f"{', ...' if self.n_classes > 5 else ''}) are not numbers: "
                             "give their order as classes= (Answers.from_columns or "
                             "Answers.from_frame), or --order on the command line")
        if np.array_equal(order, np.arange(self.n_classes)):
            return self
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        return Answers(self.item_index, self.reviewer_index, rank[self.label_index],
                       self.items, self.reviewers, self.classes[order], classes_given=True)

    def encode_gold(self, gold: Mapping[Any, Any] | pd.Series) -> tuple[IntArray, IntArray]:
        """Codes ``(item_index, class_index)`` of gold items that appear in the answers.

        Gold items nobody answered are skipped; call :meth:`with_classes` first when a gold
        label may be missing from ``classes``.
        """
        series = gold if isinstance(gold, pd.Series) else pd.Series(dict(gold), dtype=object)
        if series.empty:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy()
        item_codes = _codes(self.items, series.index.to_numpy())
        class_codes = _codes(self.classes, series.to_numpy())
        keep = item_codes >= 0
        unknown = np.flatnonzero(keep & (class_codes < 0))
        if unknown.size:
            k = int(unknown[0])
            raise InputError(f"gold label {series.iloc[k]!r} of item {series.index[k]!r} is "
                             "not among the classes; use with_classes()", field="gold")
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
