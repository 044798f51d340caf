"""The engines made while a command runs, closed when it ends.

A CLI command's engines die with its process, but a command run inside a longer-lived
one (a test, a notebook, a job runner calling the CLI in process) would otherwise leave
each engine's pooled connections open: a PostgreSQL server runs out of connection slots
after about a hundred such commands. Kept apart from :mod:`hilt.store.db` so that the
CLI can start a scope without importing the store.
"""

from __future__ import annotations

from typing import Any

# One list per scope, innermost last; make_engine records into the innermost.
_SCOPES: list[list[Any]] = []


def collect_engines() -> list[Any]:
    """Record every engine :func:`hilt.store.db.make_engine` makes from now until
    :func:`dispose_engines` is given the returned list."""
    made: list[Any] = []
    _SCOPES.append(made)
    return made


def record(engine: Any) -> None:
    if _SCOPES:
        _SCOPES[-1].append(engine)


def dispose_engines(made: list[Any]) -> None:
    """End the scope ``made`` and close the pooled connections of its engines."""
    for i in range(len(_SCOPES) - 1, -1, -1):
        if _SCOPES[i] is made:
            del _SCOPES[i]
            break
    while made:
        made.pop().dispose()
