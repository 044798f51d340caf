"""Paging for list endpoints whose body is a plain JSON list.

Such a body has no room for a cursor, and clients read it as a list, so the way to the
next page travels in headers: ``X-Next-After`` (the cursor to pass as ``after``) and an
RFC 8288 ``Link: <URL>; rel="next"`` (this request's URL, its other query parameters
kept, with ``after`` set). Both are there only when another page follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from fastapi import Query, Request, Response

from hilt.store.keyset import Keyset

NEXT_HEADER = "X-Next-After"

Row = TypeVar("Row")


def after_query() -> Any:
    """The ``after`` parameter (a new ``Query`` for each route: FastAPI writes into it)."""
    return Query(None, description=f"the {NEXT_HEADER} header of the previous page (the "
                 "cursor of its last row); left out for the first page")


# OpenAPI: the headers a paged list answers with.
PAGED: dict[int | str, dict[str, Any]] = {200: {"headers": {
    NEXT_HEADER: {"description": "the cursor of the next page, to pass as `after`; "
                                 "absent on the last page",
                  "schema": {"type": "string"}},
    "Link": {"description": "`<URL>; rel=\"next\"`: this request with `after` set to the "
                            "next page's cursor; absent on the last page",
             "schema": {"type": "string"}}}}}


def one_page(rows: Sequence[Row], limit: int, order: Keyset, request: Request,
             response: Response) -> list[Row]:
    """The first ``limit`` of ``rows`` (read with a limit of ``limit + 1``); when a row
    is left after them, the headers that lead to the next page."""
    shown, cursor = order.page(rows, limit)
    if cursor is not None:
        url = request.url.include_query_params(after=cursor)
        response.headers[NEXT_HEADER] = cursor
        response.headers["Link"] = f'<{url}>; rel="next"'
    return shown
