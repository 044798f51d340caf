"""Strict readers for suite and response files (JSON Lines, contract 3).

SUITE lines: ``{"id", "prompt", "slice", "expect": "comply"|"refuse"}`` plus any
metadata (kept, e.g. ``reference_answer``, ``rubric``). CAND / REF lines: ``{"id",
"response"}``, optionally ``"judgment": "comply"|"refuse"|"partial"``, and the optional
extensions ``"guardrail_flagged": bool`` (the guardrail's decision on this exchange) and
``"reward": number`` (a reward-model score, for the win-rate).

Every problem is an :class:`~hilt.errors.InputError` naming the file, the 1-based line
and the field; the first one found stops the run before anything is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hilt.errors import InputError
from hilt.evals.grouping import ALL

EXPECTATIONS = ("comply", "refuse")
JUDGMENTS = ("comply", "refuse", "partial")


@dataclass(frozen=True)
class SuiteItem:
    id: str
    prompt: str
    slice: str
    expect: str
    line: int
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResponseLine:
    id: str
    response: str
    line: int
    judgment: str | None = None
    guardrail_flagged: bool | None = None
    reward: float | None = None
    # what produced the reply, as ``hilt generate`` writes it (generation.settings)
    settings: dict[str, Any] | None = None


def _read_objects(path: Path) -> list[tuple[int, dict[str, Any]]]:
    from hilt.jsonl import iter_json_objects

    objects = list(iter_json_objects(path))
    if not objects:
        raise InputError("the file has no lines", file=str(path))
    return objects


def _item_id(obj: dict[str, Any], path: Path, line: int) -> str:
    if "id" not in obj:
        raise InputError("missing id", file=str(path), line=line, field="id")
    value = obj["id"]
    # Integers are accepted as ids (common in exported data) and compared as text.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError("id must be a string or an integer", file=str(path), line=line,
                         field="id")
    text = str(value)
    if not text.strip():
        raise InputError("id is empty", file=str(path), line=line, field="id")
    return text


def _string(obj: dict[str, Any], name: str, path: Path, line: int) -> str:
    if name not in obj:
        raise InputError(f"missing {name}", file=str(path), line=line, field=name)
    value = obj[name]
    if not isinstance(value, str):
        raise InputError(f"{name} must be a string", file=str(path), line=line, field=name)
    return value


def parse_suite(path: str | Path) -> list[SuiteItem]:
    """Read and validate a suite file; ids unique, expectations known."""
    path = Path(path)
    items: list[SuiteItem] = []
    seen: dict[str, int] = {}
    for line, obj in _read_objects(path):
        item_id = _item_id(obj, path, line)
        if item_id in seen:
            raise InputError(f"duplicate id {item_id!r} (first on line {seen[item_id]})",
                             file=str(path), line=line, field="id")
        seen[item_id] = line
        prompt = _string(obj, "prompt", path, line)
        slice_name = _string(obj, "slice", path, line)
        if not slice_name.strip():
            raise InputError("slice is empty", file=str(path), line=line, field="slice")
        if slice_name == ALL:
            raise InputError(f"slice name {ALL!r} is reserved for the whole suite",
                             file=str(path), line=line, field="slice")
        expect = _string(obj, "expect", path, line)
        if expect not in EXPECTATIONS:
            raise InputError(f"expect must be one of {', '.join(EXPECTATIONS)}, got "
                             f"{expect!r}", file=str(path), line=line, field="expect")
        metadata = {k: v for k, v in obj.items()
                    if k not in ("id", "prompt", "slice", "expect")}
        items.append(SuiteItem(item_id, prompt, slice_name, expect, line, metadata))
    return items


def parse_responses(path: str | Path, suite: list[SuiteItem], suite_path: str | Path
                    ) -> dict[str, ResponseLine]:
    """Read a response file; every suite item answered exactly once, nothing else."""
    path = Path(path)
    known = {item.id for item in suite}
    out: dict[str, ResponseLine] = {}
    for line, obj in _read_objects(path):
        item_id = _item_id(obj, path, line)
        if item_id not in known:
            raise InputError(f"unknown id {item_id!r}: not in the suite {suite_path}",
                             file=str(path), line=line, field="id")
        if item_id in out:
            raise InputError(f"duplicate id {item_id!r} (first on line "
                             f"{out[item_id].line})", file=str(path), line=line, field="id")
        response = _string(obj, "response", path, line)
        judgment = obj.get("judgment")
        if judgment is not None and judgment not in JUDGMENTS:
            raise InputError(f"judgment must be one of {', '.join(JUDGMENTS)}, got "
                             f"{judgment!r}", file=str(path), line=line, field="judgment")
        flagged = obj.get("guardrail_flagged")
        if flagged is not None and not isinstance(flagged, bool):
            raise InputError("guardrail_flagged must be true or false", file=str(path),
                             line=line, field="guardrail_flagged")
        reward = obj.get("reward")
        if reward is not None and (isinstance(reward, bool)
                                   or not isinstance(reward, int | float)
                                   or not math.isfinite(reward)):
            raise InputError("reward must be a finite number", file=str(path), line=line,
                             field="reward")
        generation = obj.get("generation")
        settings = generation.get("settings") if isinstance(generation, dict) else None
        out[item_id] = ResponseLine(item_id, response, line, judgment, flagged,
                                    None if reward is None else float(reward),
                                    settings if isinstance(settings, dict) else None)
    for item in suite:
        if item.id not in out:
            raise InputError(f"item {item.id!r} has no response in {path}",
                             file=str(suite_path), line=item.line, field="id")
    return out
