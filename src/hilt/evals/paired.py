"""The paired judgment table: one row per suite item, both systems side by side.

This table (plain lists, JSON-ready) is what a decision record stores, and what the
metrics are recomputed from when a decision is verified.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hilt.errors import InputError
from hilt.evals.files import ResponseLine, SuiteItem
from hilt.evals.grouping import Columns
from hilt.evals.scoring import is_refusal

SIDES = ("candidate", "reference")


def _optional_column(side: str, name: str, rows: Sequence[ResponseLine], file: str
                     ) -> list[Any] | None:
    values = [getattr(r, name) for r in rows]
    given = [v is not None for v in values]
    if not any(given):
        return None
    if not all(given):
        line = rows[given.index(False)].line
        raise InputError(f"{name} is given on some lines of the {side} file but not on "
                         "this one", file=file, line=line, field=name)
    return values


def judgment_table(items: Sequence[SuiteItem], responses: Mapping[str, Mapping[str, Any]],
                   files: Mapping[str, str]) -> dict[str, list[Any]]:
    """Build the table from parsed items and, per side, ``{"lines", "judgments",
    "sources"}`` (response lines and resolved judgments in suite order)."""
    table: dict[str, list[Any]] = {
        "id": [i.id for i in items], "slice": [i.slice for i in items],
        "expect": [i.expect for i in items]}
    extras: dict[str, dict[str, list[Any] | None]] = {}
    for side in SIDES:
        table[side] = list(responses[side]["judgments"])
        table[f"{side}_source"] = list(responses[side]["sources"])
        rows = responses[side]["lines"]
        extras[side] = {name: _optional_column(side, name, rows, files[side])
                        for name in ("guardrail_flagged", "reward")}
    for name, column in (("guardrail_flagged", "flagged"), ("reward", "reward")):
        present = [side for side in SIDES if extras[side][name] is not None]
        if len(present) == 1:
            other = "reference" if present[0] == "candidate" else "candidate"
            raise InputError(f"{name} is given in the {present[0]} file but not in this "
                             "one; paired metrics need both", file=files[other], line=1,
                             field=name)
        if present:
            for side in SIDES:
                table[f"{side}_{column}"] = list(extras[side][name] or [])
    return table


def columns_from_table(table: Mapping[str, Sequence[Any]]) -> Columns:
    """numpy columns for :func:`hilt.evals.metrics.compute_metrics`."""
    columns: dict[str, np.ndarray] = {
        # object, not numpy's fixed-width text, which drops trailing NUL characters:
        # slice "x\0" would be counted as slice "x"
        "slice": np.asarray(table["slice"], dtype=object),
        "expect_refuse": np.asarray([e == "refuse" for e in table["expect"]], dtype=bool),
    }
    for side in SIDES:
        columns[f"{side}_refused"] = np.fromiter(
            (is_refusal(j) for j in table[side]), dtype=bool, count=len(table[side]))
        if f"{side}_flagged" in table:
            columns[f"{side}_flagged"] = np.asarray(table[f"{side}_flagged"], dtype=bool)
        if f"{side}_reward" in table:
            columns[f"{side}_reward"] = np.asarray(table[f"{side}_reward"], dtype=float)
    return columns
