"""JSON-lines input (training files, suite and response files): plain or gzipped, one
object per line, errors that name the file and the line.

Lines are read as bytes and decoded one at a time, so a byte that is not UTF-8 is
reported on its own line rather than as a traceback from a decoder somewhere in a
buffered block.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hilt.errors import InputError


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all distinct: with a repeated key ``json`` would keep
    the last value silently, so ``"judgment": "refuse", "judgment": "comply"`` would read
    as a compliance nobody can see in the file."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


def _open_bytes(path: Path) -> Any:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def iter_json_objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSONL[.gz] file."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", file=str(path))
    number = 0
    try:
        with _open_bytes(path) as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(f"not UTF-8 text (byte {exc.start + 1} of the line)",
                                     file=str(path), line=number) from None
                if number == 1:  # a byte-order mark (PowerShell, Notepad) is not content
                    text = text.removeprefix("\ufeff")
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text, object_pairs_hook=_unique_keys)
                except json.JSONDecodeError as exc:
                    raise InputError(f"not valid JSON ({exc.msg})", file=str(path),
                                     line=number) from None
                except _DuplicateKey as exc:
                    raise InputError(f"key {exc.key!r} appears more than once in the "
                                     "object", file=str(path), line=number,
                                     field=exc.key) from None
                if not isinstance(obj, dict):
                    raise InputError("each line must be a JSON object", file=str(path),
                                     line=number)
                yield number, obj
    except (OSError, EOFError) as exc:  # unreadable, or a cut or false gzip stream
        raise InputError(f"cannot read file ({exc})", file=str(path),
                         line=number + 1 if number else None) from None
