"""Strict readers for suite and response files (JSON Lines, contract 3).

SUITE lines: ``{"id", "prompt", "slice", "expect": "comply"|"refuse"}`` plus any
metadata (kept, e.g. ``reference_answer``, ``rubric``). CAND / REF lines: ``{"id",
"response"}``, optionally ``"judgment": "comply"|"refuse"|"partial"``, and the optional
extensions ``"guardrail_flagged": bool`` (the guardrail's decision on this exchange) and
``"reward": number`` (a reward-model score, for the win-rate), and ``"generation"``, an
object that ``hilt generate`` writes (``generation.settings``: what produced the reply).
Any other key on a response line is refused: a misspelt ``judgement`` or ``rewad`` would
otherwise vanish, and with ``--scorer`` the classifier would stand in for the human
judgment the line gives.

Numbers must be finite everywhere, metadata included: a NaN or an infinity cannot be
written into a decision record or a suite's content hash.

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
# every key a response line may hold
RESPONSE_KEYS = ("id", "response", "judgment", "guardrail_flagged", "reward", "generation")


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


def non_finite_field(value: Any, path: str = "") -> str | None:
    """The dotted path (``a.b[1]``) of the first float in ``value`` that is NaN or
    infinite, ``""`` when ``value`` itself is one; None when every number is finite."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    items: Any = (value.items() if isinstance(value, dict)
                  else enumerate(value) if isinstance(value, list | tuple) else ())
    for key, item in items:
        inner = (f"{path}[{key}]" if isinstance(key, int) and not isinstance(value, dict)
                 else f"{path}.{key}" if path else str(key))
        found = non_finite_field(item, inner)
        if found is not None:
            return found
    return None


def check_finite(value: Any, *, field: str, file: str | None, line: int | None) -> None:
    """Refuse a NaN or an infinity anywhere in ``value`` (the value of ``field``)."""
    found = non_finite_field(value, field)
    if found is not None:
        raise InputError("must be a finite number (not NaN or infinite)", file=file,
                         line=line, field=found)


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
        for key, value in metadata.items():
            check_finite(value, field=key, file=str(path), line=line)
        items.append(SuiteItem(item_id, prompt, slice_name, expect, line, metadata))
    return items


def parse_responses(path: str | Path, suite: list[SuiteItem], suite_path: str | Path, *,
                    unknown_keys_ignored: bool = False) -> dict[str, ResponseLine]:
    """Read a response file; every suite item answered exactly once, nothing else.

    ``unknown_keys_ignored`` is for re-reading the very file a stored decision was made
    from (its sha256 checked first): a decision made before unknown keys were refused
    ignored them, and its re-check must read the file as it was read then."""
    path = Path(path)
    known = {item.id for item in suite}
    out: dict[str, ResponseLine] = {}
    for line, obj in _read_objects(path):
        unknown = next((key for key in obj if key not in RESPONSE_KEYS), None)
        if unknown is not None and not unknown_keys_ignored:
            raise InputError(f"unknown key (a response line holds "
                             f"{', '.join(RESPONSE_KEYS)})", file=str(path), line=line,
                             field=unknown)
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
        settings = _generation_settings(obj, path, line)
        out[item_id] = ResponseLine(item_id, response, line, judgment, flagged,
                                    None if reward is None else float(reward), settings)
    for item in suite:
        if item.id not in out:
            raise InputError(f"item {item.id!r} has no response in {path}",
                             file=str(suite_path), line=item.line, field="id")
    return out


def _generation_settings(obj: dict[str, Any], path: Path, line: int
                         ) -> dict[str, Any] | None:
    """``generation.settings`` of a response line (None when absent). The contents are
    free, as ``hilt generate`` records them, but must be objects and finite: they go
    into the decision record as ``versions.decoder_settings``."""
    generation = obj.get("generation")
    if generation is None:
        return None
    if not isinstance(generation, dict):
        raise InputError("generation must be an object", file=str(path), line=line,
                         field="generation")
    check_finite(generation, field="generation", file=str(path), line=line)
    settings = generation.get("settings")
    if settings is not None and not isinstance(settings, dict):
        raise InputError("generation.settings must be an object", file=str(path),
                         line=line, field="generation.settings")
    return settings
