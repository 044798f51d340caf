"""The error bodies the API sends, as OpenAPI models, declared on every route.

Two shapes share status 422: FastAPI's request validation (``detail`` is a list of
problems with ``loc``, ``msg``, ``type``) and hilt's own checks, which run after it
(``detail`` is one message and ``error`` names the file, line and field; a body that
cannot be read as JSON is one of these). Every other error (400, 401, 403, 404, 405,
409, 413, 415) is ``{"detail": "<message>"}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, RootModel

from hilt.api.schemas import sometimes


class ErrorLocation(BaseModel):
    file: str | None = Field(description="the file or request part at fault, if any")
    line: int | None = Field(description="its line, when the input had lines")
    field: str | None = Field(description="the field at fault, dotted (questions.2.max)")
    reason: str


class Error(BaseModel):
    """Any error but request validation: one message."""

    detail: str


class InputErrorBody(Error):
    """A request that was well-formed but refused by hilt's own checks."""

    error: ErrorLocation | None = None


class ValidationProblem(BaseModel):
    loc: list[str | int] = Field(description="where: body, query, path or header, then "
                                             "the field")
    msg: str
    type: str
    input: Any = Field(description="the value refused (a non-finite number as the string "
                                   "NaN, Infinity or -Infinity)")
    ctx: dict[str, Any] = sometimes("the limit broken, for some problems (e.g. "
                                    "{\"ge\": 1})")


class RequestValidationBody(BaseModel):
    """FastAPI's request validation: every problem found."""

    detail: list[ValidationProblem]


class UnprocessableBody(RootModel[RequestValidationBody | InputErrorBody]):
    """Either 422 body."""


def _response(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"model": model, "description": description}


# Added to every route of the API routers (see hilt.api.app.create_app).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _response(Error, "missing, unknown or revoked token"),
    403: _response(Error, "the token's role may not do this, or the reviewer may not "
                          "work (suspended, inactive)"),
    404: _response(Error, "no such object"),
    409: _response(Error, "conflicts with the current state (already done, taken, "
                          "cancelled, or a stored model that cannot be used)"),
    413: _response(Error, "a request body over the route's limit (refused unread)"),
    415: _response(Error, "a request body that is not plain JSON (compressed, or sent "
                          "without Content-Type: application/json)"),
    422: _response(UnprocessableBody, "invalid request: a list of problems (request "
                                      "validation) or one message naming file, line and "
                                      "field (also for a body that is not readable JSON: "
                                      "malformed, repeated key, nested too deeply)"),
}
