"""Checks on free text and names that reach the database from reviewers and leads.

PostgreSQL cannot store the NUL character in text or ``jsonb`` (SQLite can), so a NUL
would be accepted on one backend and fail on the other with a message naming no field;
it is refused up front on both, naming the field. Pool and skill names must be short,
non-blank words: a task whose pool is ``""`` or 10 000 characters long can never be
claimed, since no reviewer profile names it. A reviewer id is such a name too, without
``/`` (it must fit in one URL path segment) and up to :data:`REVIEWER_ID_MAX`
characters. Reviewers' text is bounded: a rationale (of a review or an adjudication) and
a rewrite given without a rubric rewrite question hold at most :data:`TEXT_MAX`
characters, the default ``max_length`` of a rubric's free-text and rewrite questions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator

from hilt.errors import InputError

# reviewers.pools and review_tasks.pool are String(100); skills share the limit.
NAME_MAX = 100
# reviewers.id and every column that names a reviewer (reviews.reviewer_id, actors) are
# String(200).
REVIEWER_ID_MAX = 200
# Free text a reviewer writes: the default max_length of a rubric's text questions.
TEXT_MAX = 20_000
RATIONALE_MAX = TEXT_MAX


def _name_problem(value: str, limit: int = NAME_MAX) -> str | None:
    if not value.strip():
        return "must be a non-blank name"
    if len(value) > limit:
        return f"must be at most {limit} characters, not {len(value)}"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "must not contain control characters (NUL, newline, tab, ...)"
    return None


def _valid_name(value: str) -> str:
    problem = _name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# check_name for pydantic models (rule sets).
Name = Annotated[str, AfterValidator(_valid_name)]


def nul_path(value: Any, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Where in ``value`` (nested lists and mappings) a string holds a NUL; ``None`` if
    nowhere. Mapping keys count too (they are stored as well)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = (*path, str(key))
            if isinstance(key, str) and "\x00" in key:
                return where
            found = nul_path(item, where)
            if found is not None:
                return found
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = nul_path(item, (*path, str(i)))
            if found is not None:
                return found
    return None


def refuse_nul(value: Any, field: str, *, file: str | None = None) -> None:
    """Raise :class:`InputError` naming the field (and the place inside it) when a string
    in ``value`` holds a NUL character."""
    found = nul_path(value)
    if found is not None:
        raise InputError("contains a NUL character (\\u0000), which cannot be stored",
                         file=file, field=".".join((field, *found)))


def check_name(value: Any, field: str, limit: int = NAME_MAX) -> str:
    """A pool or skill name: a non-blank string of at most ``limit`` characters
    (:data:`NAME_MAX` by default) without NUL or other control characters."""
    if not isinstance(value, str):
        raise InputError("must be a non-blank name", field=field)
    problem = _name_problem(value, limit)
    if problem is not None:
        raise InputError(problem, field=field)
    return value


def check_names(values: Iterable[Any], field: str) -> list[str]:
    return [check_name(v, f"{field}.{i}") for i, v in enumerate(values)]


def check_reviewer_id(value: Any, field: str = "reviewer_id") -> str:
    """A reviewer id: a name as :func:`check_name` (up to :data:`REVIEWER_ID_MAX`
    characters) that is also one URL path segment (no ``/``, not ``.`` or ``..``), so
    that the HTTP API can always name it (``/v1/reviewers/{id}/deactivate``)."""
    if not isinstance(value, str):
        raise InputError("must be a non-blank name", field=field)
    problem = _name_problem(value, REVIEWER_ID_MAX)
    if problem is None and "/" in value:
        problem = "must not contain '/'"
    if problem is None and value in (".", ".."):
        problem = f"must not be {value!r}"
    if problem is not None:
        raise InputError(problem, field=field)
    return value


def check_length(value: str | None, field: str, limit: int) -> None:
    """Raise :class:`InputError` naming the field when ``value`` is longer than
    ``limit`` characters."""
    if value is not None and len(value) > limit:
        raise InputError(f"must be at most {limit} characters, not {len(value)}",
                         field=field)
