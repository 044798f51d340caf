"""A decision record against its input files: do the files still say what it records?

:func:`hilt.gate.decision.verify` shows that a record is consistent with itself: its
metrics and verdict follow from its stored inputs. It cannot show that those inputs are
the files the check read; someone who edits ``inputs.judgments`` and rebuilds the record
gets one that verifies. :func:`input_problems` re-reads the suite and response files
the record names (found beside the decision, at their place relative to it, or at their
recorded path, :func:`candidate_paths`; checked by their recorded sha256) and
compares what the files themselves say with the record: item ids, slices and
expectations, every judgment a file gives (source ``human``; a classifier's judgments
are the scorer's and are not re-run), guardrail flags, and rewards read from the files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hilt.errors import InputError
from hilt.evals.files import ResponseLine, SuiteItem, parse_responses, parse_suite
from hilt.evals.scoring import CLASSIFIER, HUMAN

INPUT_FILES = ("suite", "candidate", "reference")


def _sha256(path: Path) -> str:
    from hilt.evals.check import file_sha256

    return file_sha256(path)


def _tails(path: Path) -> list[Path]:
    """The trailing parts of a recorded path, longest first: ``suites/a/x.jsonl``,
    ``a/x.jsonl``, ``x.jsonl`` for ``/run/suites/a/x.jsonl`` (the root left out)."""
    parts = path.relative_to(path.anchor).parts if path.anchor else path.parts
    return [Path(*parts[start:]) for start in range(len(parts))]


def candidate_paths(recorded: str, base: Path | None, inputs_dir: Path | None = None
                    ) -> list[Path]:
    """Where a recorded input may be, nearest first; the first that exists is the one
    checked (:func:`locate_input`).

    A check's inputs are kept in its output folder or next to it, at the top or in
    subfolders (``suites/a/x.jsonl`` and ``suites/b/x.jsonl``); a moved folder keeps
    their places relative to one another. So each is looked for at the trailing parts
    of its recorded path, longest first, under ``base`` (the decision's folder) and
    then under the folder above it: ``base/../suites/a/x.jsonl`` before
    ``base/../a/x.jsonl`` before ``base/../x.jsonl``. Two inputs of one name in
    different subfolders are each found in their own, and the bare name, the last try
    under a folder, cannot take one for the other while the subfolders are there. Last
    comes the recorded path itself (absolute in new records; older ones hold it
    relative to where the check ran, and that relative path is tried under both folders
    first). A moved check folder is thus re-checked on the files that moved with it,
    and a copied one on its own files, never silently on the originals its record still
    names. ``inputs_dir`` given: that folder only, the same trailing parts under it."""
    path = Path(recorded)
    tails = _tails(path)
    if inputs_dir is not None:
        # that folder only: a trailing part that climbs out of it ("..") is left out
        return [inputs_dir / tail for tail in tails if ".." not in tail.parts]
    near: list[Path] = []
    if base is not None:
        # absolute and normalised: the parent of "." or of "out/.." is a real folder
        base = Path(os.path.abspath(base))
        # a longer trailing path is more particular to this input: it goes first
        near = [folder / tail for tail in tails for folder in (base, base.parent)]
    seen: set[Path] = set()
    out = []
    for candidate in [*near, path]:
        key = candidate.resolve()
        if key not in seen:
            seen.add(key)
            out.append(candidate)
    return out


def locate_input(key: str, entry: Any, base: Path | None, inputs_dir: Path | None = None,
                 *, others: Mapping[str, Any] | None = None
                 ) -> tuple[Path | None, InputError | None]:
    """``(path, None)``: the file checked for ``versions[key]`` (the first of
    :func:`candidate_paths` that exists), holding its recorded sha256; ``(path, error)``:
    that file does not hold it (``path`` None when no candidate exists). A file beside
    the decision that differs is reported even when the recorded path still holds the
    original, and the error names both the file checked and the recorded path.
    ``others``: the record's other inputs (``versions``), so that a file holding one of
    them is reported as that input's file, not as an edit."""
    if not isinstance(entry, Mapping) or not entry.get("path") or not entry.get("sha256"):
        return None, InputError(f"the record names no {key} file (versions.{key}.path and "
                                "sha256)", field=f"versions.{key}")
    sha = str(entry["sha256"])
    recorded = str(entry["path"])
    tried = candidate_paths(recorded, base, inputs_dir)
    for rank, path in enumerate(tried):
        if not path.is_file():
            continue
        found = _sha256(path)
        if found == sha:
            return path, None
        mistaken = [name for name, other in (others or {}).items()
                    if name != key and isinstance(other, Mapping)
                    and other.get("sha256") == found]
        if mistaken:
            other = (others or {})[mistaken[0]]
            return path, InputError(
                f"{key} file mistaken for another: {path} holds the recorded {mistaken[0]} "
                f"file ({other.get('path')}, sha256 {found[:12]}…), not the {key} file "
                f"the check read ({recorded}, sha256 {sha[:12]}…); keep the inputs at "
                "their places relative to one another", file=str(path),
                field=f"versions.{key}")
        original = [p for p in tried[rank + 1:] if p.is_file() and _sha256(p) == sha]
        also = (f"; {original[0]} holds the recorded content, but the nearer file is the "
                "one checked" if original
                else f"; the check read {recorded}" if Path(recorded) != path else "")
        return path, InputError(f"{key} file changed since the check: {path} does not "
                                f"hold the recorded sha256 {sha[:12]}…{also}",
                                file=str(path), field=f"versions.{key}")
    if inputs_dir is not None:
        where = f"under {inputs_dir} at each trailing part of {recorded}"
    elif base is not None:
        folder = os.path.abspath(base)
        where = (f"under {folder} and {os.path.dirname(folder)} at each trailing part of "
                 f"{recorded}, then at that path")
    else:
        where = f"at {recorded}"
    return None, InputError(f"{key} file missing (recorded sha256 {sha[:12]}…; looked "
                            f"{where})",
                            file=str(tried[0]), field=f"versions.{key}")


def resolve_input(key: str, entry: Any, base: Path | None, inputs_dir: Path | None = None
                  ) -> Path:
    """The file of ``versions[key]`` (:func:`locate_input`), or its InputError."""
    path, error = locate_input(key, entry, base, inputs_dir)
    if error is not None:
        raise error
    assert path is not None
    return path


def _locate_all(record: Mapping[str, Any], base: str | Path | None,
                inputs_dir: str | Path | None
                ) -> tuple[dict[str, Path | None], list[InputError]]:
    versions = record["inputs"]["versions"]
    folder = Path(base) if base is not None else None
    given = Path(inputs_dir) if inputs_dir is not None else None
    paths: dict[str, Path | None] = {}
    errors: list[InputError] = []
    for key in INPUT_FILES:
        paths[key], error = locate_input(key, versions.get(key), folder, given,
                                         others={k: versions.get(k) for k in INPUT_FILES})
        if error is not None:
            errors.append(error)
    return paths, errors


def _read(paths: Mapping[str, Path | None]
          ) -> tuple[list[SuiteItem], dict[str, dict[str, ResponseLine]]]:
    suite, candidate, reference = (paths[key] for key in INPUT_FILES)
    assert suite is not None and candidate is not None and reference is not None
    items = parse_suite(suite)
    # the files' sha256 matched the record: read them as the check that made it did
    lines = {side: parse_responses(path, items, suite, unknown_keys_ignored=True)
             for side, path in (("candidate", candidate), ("reference", reference))}
    return items, lines


def reload_inputs(record: Mapping[str, Any], base: str | Path | None = None, *,
                  inputs_dir: str | Path | None = None
                  ) -> tuple[list[SuiteItem], dict[str, dict[str, ResponseLine]]]:
    """The suite and response files the record names (:func:`candidate_paths`), checked
    against their sha256; the first that is missing or differs is raised."""
    paths, errors = _locate_all(record, base, inputs_dir)
    if errors:
        raise errors[0]
    return _read(paths)


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


@dataclass(frozen=True)
class InputsCheck:
    """What :func:`check_inputs` found: the file checked for each input (None where
    none was found) and every disagreement (empty: the files match the record)."""

    files: dict[str, str | None]
    problems: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": not self.problems, "problems": self.problems, "files": self.files}


def check_inputs(record: Mapping[str, Any], base: str | Path | None = None, *,
                 inputs_dir: str | Path | None = None) -> InputsCheck:
    """The record against its input files (:func:`input_problems`), naming the file
    checked for each input."""
    files: dict[str, str | None] = {}
    try:
        paths, errors = _locate_all(record, base, inputs_dir)
        files = {key: str(path) if path is not None else None for key, path in paths.items()}
        if errors:
            return InputsCheck(files, [str(error) for error in errors])
        items, lines = _read(paths)
        table = record["inputs"]["judgments"]
        scored = record["inputs"]["versions"].get("reward_model") is not None
    except InputError as exc:
        return InputsCheck(files, [str(exc)])
    except (KeyError, TypeError, AttributeError) as exc:
        return InputsCheck(files, [f"record malformed: {exc!r}"])
    if not isinstance(table, Mapping):
        return InputsCheck(files, ["inputs.judgments is not a table"])
    problems: list[str] = []
    for name, values in (("id", [i.id for i in items]), ("slice", [i.slice for i in items]),
                         ("expect", [i.expect for i in items])):
        problems += _column_problems(name, table.get(name), values)
    if problems:  # rows do not line up: comparing the sides would only repeat it
        return InputsCheck(files, problems)
    for side in ("candidate", "reference"):
        problems += _side_problems(side, items, lines[side], table, scored)
    return InputsCheck(files, problems)


def input_problems(record: Mapping[str, Any], base: str | Path | None = None, *,
                   inputs_dir: str | Path | None = None) -> list[str]:
    """Every way the record's inputs disagree with its files (empty: they agree).

    ``base``: the folder of the decision file, where the files are looked for first
    (:func:`candidate_paths`); ``inputs_dir``: the one folder to look in instead."""
    return check_inputs(record, base, inputs_dir=inputs_dir).problems
