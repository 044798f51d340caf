"""Request bodies refuse fields they do not know: a misspelt option is a 422 naming it,
never dropped in silence (``{"dryrun": true}`` must not store alerts)."""

from __future__ import annotations

import importlib
import pkgutil
import types
import typing

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy.engine import Engine

import hilt.api.routers
from tests.api.conftest import Api


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    # Validation comes before any query: SQLite only.
    return sqlite_engine


# (path, role, body with one misspelt field, the misspelt field)
CASES = [
    ("/v1/drift/run", "lead", {"dryrun": True}, "dryrun"),
    ("/v1/drift/alerts/da_x/ack", "lead", {"notes": "seen"}, "notes"),
    ("/v1/drift/bridges", "lead", {"rubric_id": "harm", "old_version": 1,
                                   "new_version": 2, "perstratum": 5}, "perstratum"),
    ("/v1/drift/decisions", "lead", {"rubric_id": "harm", "old_version": 1,
                                     "new_version": 2, "kind": "accept", "reason": "ok",
                                     "question": "verdict"}, "question"),
    ("/v1/quality/refresh", "lead", {"rubric_id": ["harm"]}, "rubric_id"),
    ("/v1/quality/reviewers/r1/status", "lead", {"status": "calibrated", "reason": "ok",
                                                 "actor": "x"}, "actor"),
    ("/v1/datasets", "lead", {"spec": {}, "dry_run": True}, "dry_run"),
    ("/v1/datasets/ds_x/revoke", "lead", {"reason": "bad", "why": "x"}, "why"),
    ("/v1/datasets/forget-subject", "lead", {"subject_id": "u1", "reasons": "x"},
     "reasons"),
    ("/v1/jobs", "lead", {"kind": "train.reward", "param": {}}, "param"),
    ("/v1/webhooks", "admin", {"url": "https://example.org/h", "event_types": ["x"],
                               "events": ["y"]}, "events"),
]


@pytest.mark.parametrize(("path", "role", "body", "field"), CASES)
def test_a_misspelt_body_field_is_a_422_naming_it(api: Api, path: str, role: str,
                                                  body: dict[str, object],
                                                  field: str) -> None:
    resp = api.client.post(path, json=body, headers=api.headers(role))
    assert resp.status_code == 422, resp.text
    problems = resp.json()["detail"]
    assert any(p["loc"] == ["body", field] and p["type"] == "extra_forbidden"
               for p in problems), problems


def _models(annotation: object) -> list[type[BaseModel]]:
    """The pydantic models in a body annotation (``Model`` or ``Model | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is \
            typing.Union:
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def test_every_request_body_model_forbids_unknown_fields() -> None:
    lax = []
    for info in pkgutil.iter_modules(hilt.api.routers.__path__):
        module = importlib.import_module(f"hilt.api.routers.{info.name}")
        for route in module.router.routes:
            if not isinstance(route, APIRoute):
                continue
            for param in route.dependant.body_params:
                for model in _models(param.field_info.annotation):
                    if model.model_config.get("extra") != "forbid":
                        lax.append(f"{route.path}: {model.__name__}")
    assert lax == []
