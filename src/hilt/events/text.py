"""Text that no store can hold: a NUL character, which PostgreSQL refuses in text and
jsonb, and a lone surrogate (``\\ud800``), which has no UTF-8 form at all. JSON text can
spell a NUL but no lone surrogate (the parser refuses one); a CSV cell's JSON and a
Python string can hold either. Refused naming the field, on every backend, rather than
at the write with an error naming nothing."""

from __future__ import annotations

import json
from typing import Any

from hilt.errors import InputError


def bad_text(text: str) -> str | None:
    """Why no store can hold ``text``, or None."""
    if "\x00" in text:
        return "text must not contain NUL characters (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (f"text must not contain a lone surrogate (U+{ord(text[exc.start]):04X}"
                    "), which has no UTF-8 form")
    return None


def unstorable_text_error(value: Any, *, file: str | None, line: int | None
                          ) -> InputError | None:
    """The error for the first string in ``value`` (an event as JSON-like data: a dict,
    or its JSON text) that no store can hold, naming its field (a key: the object's
    field and the key); None when there is none."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            return None

    def find(item: Any, path: str) -> tuple[str, str] | None:
        if isinstance(item, str):
            reason = bad_text(item)
            return (path or "(record)", reason) if reason else None
        items = (item.items() if isinstance(item, dict)
                 else enumerate(item) if isinstance(item, list | tuple) else ())
        for key, sub in items:
            if isinstance(key, str) and bad_text(key):
                return f"{path}.{key!r}".lstrip("."), str(bad_text(key))
            found = find(sub, f"{path}[{key}]" if isinstance(key, int)
                         else f"{path}.{key}".lstrip("."))
            if found:
                return found
        return None

    found = find(value, "")
    if found is None:
        return None
    return InputError(found[1], file=file, line=line, field=found[0])
