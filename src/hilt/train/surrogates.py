"""Text that is no Unicode: lone surrogates in training input.

JSON may escape a UTF-16 surrogate on its own (``"\\ud800"``); Python's ``json`` reads it
as a one-character string that no encoder accepts, so a tokenizer, a hash or the
manifest fails with a traceback deep in training, far from the line that held it. Every
training reader refuses such a string up front, naming the file, the line and the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hilt.errors import InputError


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def lone_surrogate_path(value: Any, path: tuple[str | int, ...] = ()
                        ) -> tuple[str | int, ...] | None:
    """The path of the first string (a key, or a value) in ``value`` holding a lone
    surrogate; None when there is none (``()`` when ``value`` itself is one)."""
    if isinstance(value, str):
        return None if _is_text(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not _is_text(key):
                return (*path, key.encode("utf-8", "backslashreplace").decode("ascii"))
            found = lone_surrogate_path(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = lone_surrogate_path(item, (*path, i))
            if found is not None:
                return found
    return None


def refuse_lone_surrogates(obj: dict[str, Any], file: str, line: int,
                           fields: Iterable[str] | None = None) -> None:
    """Refuse a line whose ``fields`` (default: every key and value) hold a lone
    surrogate, naming the file, the line and the field (``messages[1].content``)."""
    from hilt.jsonl import field_path

    names = list(obj) if fields is None else [name for name in fields if name in obj]
    for name in names:
        found = lone_surrogate_path({name: obj[name]})
        if found is not None:
            raise InputError("holds a lone UTF-16 surrogate (an escape such as \\ud800 "
                             "that is no character): not Unicode text", file=file,
                             line=line, field=field_path(found))
