"""A decision record against its input files: do the files still say what it records?

:func:`hilt.gate.decision.verify` shows that a record is consistent with itself: its
metrics and verdict follow from its stored inputs. It cannot show that those inputs are
the files the check read; someone who edits ``inputs.judgments`` and rebuilds the record
gets one that verifies. :func:`input_problems` re-reads the suite and response files
the record names (found by their recorded path, checked by their recorded sha256) and
compares what the files themselves say with the record: item ids, slices and
expectations, every judgment a file gives (source ``human``; a classifier's judgments
are the scorer's and are not re-run), guardrail flags, and rewards read from the files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hilt.errors import InputError
from hilt.evals.files import ResponseLine, SuiteItem, parse_responses, parse_suite
from hilt.evals.scoring import CLASSIFIER, HUMAN

INPUT_FILES = ("suite", "candidate", "reference")


def _sha256(path: Path) -> str:
    from hilt.evals.check import file_sha256

    return file_sha256(path)


def candidate_paths(recorded: str, base: Path | None) -> list[Path]:
    """Where a recorded input path may be: as written (absolute, or relative to the
    working folder), then relative to ``base`` (the decision's folder). Records made
    before paths were stored absolute hold them relative to where the check ran."""
    path = Path(recorded)
    if path.is_absolute() or base is None:
        return [path]
    return [path, base / path]


def resolve_input(key: str, entry: Mapping[str, Any], base: Path | None) -> Path:
    """The file of ``versions[key]``: the first candidate path holding the recorded
    content (the sha256 decides, so a file found in two places is the same file)."""
    if not isinstance(entry, Mapping) or not entry.get("path") or not entry.get("sha256"):
        raise InputError(f"the record names no {key} file (versions.{key}.path and "
                         "sha256)", field=f"versions.{key}")
    tried = candidate_paths(str(entry["path"]), base)
    for path in tried:
        if path.is_file() and _sha256(path) == entry["sha256"]:
            return path
    present = [p for p in tried if p.is_file()]
    why = "changed since the check" if present else "missing"
    raise InputError(f"{key} file {why} (recorded sha256 {str(entry['sha256'])[:12]}…; "
                     f"looked at {', '.join(str(p) for p in tried)})",
                     file=str(present[0] if present else tried[0]), field=f"versions.{key}")


def reload_inputs(record: Mapping[str, Any], base: str | Path | None = None
                  ) -> tuple[list[SuiteItem], dict[str, dict[str, ResponseLine]]]:
    """The suite and response files the record names, checked against their sha256."""
    versions = record["inputs"]["versions"]
    folder = Path(base) if base is not None else None
    paths = {key: resolve_input(key, versions.get(key), folder) for key in INPUT_FILES}
    items = parse_suite(paths["suite"])
    # the files' sha256 matched the record: read them as the check that made it did
    lines = {side: parse_responses(paths[side], items, paths["suite"],
                                   unknown_keys_ignored=True)
             for side in ("candidate", "reference")}
    return items, lines


def _column_problems(name: str, recorded: Any, from_files: list[Any]) -> list[str]:
    if not isinstance(recorded, list) or len(recorded) != len(from_files):
        return [f"inputs.judgments.{name}: the record has "
                f"{len(recorded) if isinstance(recorded, list) else 'no'} entries, the "
                f"files {len(from_files)}"]
    wrong = [i for i, (a, b) in enumerate(zip(recorded, from_files, strict=True)) if a != b]
    if not wrong:
        return []
    first = wrong[0]
    return [f"inputs.judgments.{name}: {len(wrong)} entries differ from the files (first "
            f"at row {first}: recorded {recorded[first]!r}, file {from_files[first]!r})"]


def _side_problems(side: str, items: list[SuiteItem], lines: Mapping[str, ResponseLine],
                   table: Mapping[str, Any], scored_rewards: bool) -> list[str]:
    rows = [lines[item.id] for item in items]
    recorded = list(table.get(side) or [])
    sources = list(table.get(f"{side}_source") or [])
    if len(recorded) != len(rows) or len(sources) != len(rows):
        return [f"inputs.judgments.{side}: {len(recorded)} judgments recorded, the files "
                f"have {len(rows)} lines"]
    problems = []
    # a judgment written in the file is the human one; the record must hold exactly it
    expected_judgments = [r.judgment if r.judgment is not None else recorded[i]
                          for i, r in enumerate(rows)]
    problems += _column_problems(side, recorded, expected_judgments)
    expected_sources = [HUMAN if r.judgment is not None
                        else (sources[i] if sources[i] != HUMAN else CLASSIFIER)
                        for i, r in enumerate(rows)]
    problems += _column_problems(f"{side}_source", sources, expected_sources)
    flags = [r.guardrail_flagged for r in rows]
    if any(f is not None for f in flags) or f"{side}_flagged" in table:
        problems += _column_problems(f"{side}_flagged", table.get(f"{side}_flagged"), flags)
    rewards = [r.reward for r in rows]
    if not scored_rewards and (any(r is not None for r in rewards)
                               or f"{side}_reward" in table):
        problems += _column_problems(f"{side}_reward", table.get(f"{side}_reward"), rewards)
    return problems


def input_problems(record: Mapping[str, Any], base: str | Path | None = None) -> list[str]:
    """Every way the record's inputs disagree with its files (empty: they agree).

    ``base``: the folder of the decision file, where relative recorded paths are looked
    for too."""
    try:
        items, lines = reload_inputs(record, base)
        table = record["inputs"]["judgments"]
        scored = record["inputs"]["versions"].get("reward_model") is not None
    except InputError as exc:
        return [str(exc)]
    except (KeyError, TypeError, AttributeError) as exc:
        return [f"record malformed: {exc!r}"]
    if not isinstance(table, Mapping):
        return ["inputs.judgments is not a table"]
    problems: list[str] = []
    for name, values in (("id", [i.id for i in items]), ("slice", [i.slice for i in items]),
                         ("expect", [i.expect for i in items])):
        problems += _column_problems(name, table.get(name), values)
    if problems:  # rows do not line up: comparing the sides would only repeat it
        return problems
    for side in ("candidate", "reference"):
        problems += _side_problems(side, items, lines[side], table, scored)
    return problems
