"""Every JSON reply a test receives from the app matches the model declared for its
route and status (``responses=`` in the routers; see :mod:`hilt.api.schemas`).

Checked strictly: each model is copied with ``extra="forbid"`` (a field the model does
not name fails, so the documentation cannot fall behind the code) and validated in
strict mode (a number sent as a string fails). Fields declared with
:func:`hilt.api.schemas.sometimes` may be absent. An error reply (4xx) on a route that
declares no model for its status, or on a path that is no route, must have hilt's error
shape (:mod:`hilt.api.errors`). Replies that are not JSON (pages, metrics, the NDJSON
export) and the success replies of routes left out of the OpenAPI schema (the schema
itself) are not checked.
"""

from __future__ import annotations

import functools
import types
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from httpx import Response
from pydantic import BaseModel, ConfigDict, RootModel, TypeAdapter, ValidationError, create_model
from starlette.routing import Match

from hilt.api.app import api_routes
from hilt.api.errors import Error, UnprocessableBody


def strict(tp: Any) -> Any:
    """``tp`` with every model in it replaced by a copy that refuses unknown fields."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _strict_model(tp)
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return Annotated[(strict(args[0]), *tp.__metadata__)]  # type: ignore[return-value]
    if origin in (Union, types.UnionType):
        return Union[tuple(strict(a) for a in args)]  # noqa: UP007
    if origin in (list, dict, tuple, set, frozenset) and args:
        return origin[tuple(strict(a) for a in args)]
    return tp


@functools.cache
def _strict_model(model: type[BaseModel]) -> Any:
    if issubclass(model, RootModel):
        return strict(model.model_fields["root"].annotation)
    fields: dict[str, Any] = {name: (strict(info.annotation), info)
                              for name, info in model.model_fields.items()}
    return create_model(model.__name__, __config__=ConfigDict(extra="forbid"), **fields)


@functools.cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(strict(tp))


def matching_route(app: FastAPI, method: str, path: str) -> APIRoute | None:
    """The endpoint the app's router sends ``method path`` to, if any."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    for route in api_routes(app):  # in the order the app's router tries them
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return route
    return None


def declared_model(route: APIRoute | None, status: int) -> Any:
    """The model of the ``status`` body of ``route`` (None: nothing declared)."""
    if route is not None:
        spec = route.responses.get(status) or route.responses.get(str(status)) or {}
        if "model" in spec:
            return spec["model"]
        explicit = route.response_model
        if status == (route.status_code or 200) and isinstance(explicit, type) \
                and issubclass(explicit, BaseModel):
            return explicit
    if status >= 400:
        return UnprocessableBody if status == 422 else Error
    return None


def _is_hilt_app(app: Any) -> bool:
    # create_app records the paths open without a token; other apps (a benchmark's
    # stand-in server) declare nothing of hilt's
    return isinstance(app, FastAPI) and hasattr(app.state, "public_paths")


def _is_json(response: Response) -> bool:
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def check_reply(app: Any, response: Response) -> None:
    """Raise ``AssertionError`` unless ``response`` matches its declared model."""
    if not _is_hilt_app(app) or not _is_json(response):
        return
    method, path = response.request.method, response.request.url.path
    status = response.status_code
    route = matching_route(app, method, path)
    if status < 400 and (route is None or not route.include_in_schema):
        return
    model = declared_model(route, status)
    where = f"{method} {path} answered {status}"
    if model is None:
        raise AssertionError(f"{where} with JSON, but declares no model for that status")
    try:
        _adapter(model).validate_json(response.content, strict=True)
    except ValidationError as exc:
        raise AssertionError(f"{where}; the body does not match {_name(model)}:\n{exc}\n"
                             f"body: {response.text[:2000]}") from None


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp)


def check_every_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check each reply of every test client (until the test ends)."""
    sent = TestClient.request

    def request(self: TestClient, *args: Any, **kwargs: Any) -> Response:
        response = sent(self, *args, **kwargs)
        check_reply(self.app, response)
        return response

    monkeypatch.setattr(TestClient, "request", request)

