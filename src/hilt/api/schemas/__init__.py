"""Models of the API's response bodies, one module per router, for the OpenAPI schema.

Routes declare them with ``responses=declared(Model)`` and go on returning their own
dicts: a ``response_model`` would make FastAPI filter each reply through the model (a
field the model forgot would be dropped without a word) and serialise it a second time.
The models are kept true by the API tests, which check every JSON reply they receive
against the model declared for its route and status, refusing any field a model does
not name (``tests/api/conformance.py``).

A field the body carries only in some cases is declared with :func:`sometimes`: not
required, and never ``null`` unless its type says so.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# The ``responses`` argument of a route: status -> OpenAPI response (``model``,
# ``description``, ``headers``).
Responses = dict[int | str, dict[str, Any]]


class Schema(BaseModel):
    """A response body as the API sends it."""


def _without_default(schema: dict[str, Any]) -> None:
    # Absent is not null: the schema must not announce a default the body never has.
    schema.pop("default", None)


def sometimes(description: str) -> Any:
    """A field present only in the cases ``description`` names (not required)."""
    return Field(default=None, description=description, json_schema_extra=_without_default)


def free_form(description: str) -> Any:
    """A nested document whose shape is not fixed by the API (a rubric, a manifest)."""
    return Field(description=f"{description} (a free-form object)")


def declared(model: Any, status: int = 200, *more: Responses,
             description: str | None = None) -> Responses:
    """``responses`` for a route whose ``status`` body is ``model``, merged with ``more``
    (the paging headers, the error answers of one route) status by status, so that
    neither replaces the other."""
    first: dict[str, Any] = {"model": model}
    if description is not None:
        first["description"] = description
    out: Responses = {status: first}
    for extra in more:
        for code, spec in extra.items():
            out[code] = {**out.get(code, {}), **spec}
    return out
