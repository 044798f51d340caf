"""Bodies that fail validation get 422 with each problem's location and message, also
when the body holds NaN or Infinity literals (which strict JSON cannot carry back)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import Engine

from tests.api.conftest import Api


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    # Validation comes before any query: SQLite only.
    return sqlite_engine


# (route, role, body): each fails validation at a field next to a non-finite number
CASES = [
    ("/v1/queue/tasks/task_x/submit", "reviewer",
     b'{"answers": {"verdict": "safe"}, "confidence": NaN}', ("body", "confidence")),
    ("/v1/queue/tasks/task_x/submit", "reviewer",
     b'{"answers": {"verdict": "safe"}, "time_spent_s": -Infinity}',
     ("body", "time_spent_s")),
    ("/v1/tasks", "lead", b'{"x": NaN}', ("body", "event_id")),
    ("/v1/jobs", "lead", b'{"kind": Infinity, "params": {}}', ("body", "kind")),
    ("/v1/webhooks", "admin", b'{"url": NaN, "event_types": ["x"]}', ("body", "url")),
    ("/v1/datasets/forget-subject", "lead", b'{"subject_id": [NaN]}',
     ("body", "subject_id")),
]


@pytest.mark.parametrize(("path", "role", "body", "loc"), CASES)
def test_non_finite_numbers_in_an_invalid_body_are_a_422(
        api: Api, path: str, role: str, body: bytes, loc: tuple[str, ...]) -> None:
    resp = api.client.post(path, content=body, headers={
        **api.headers(role), "Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    detail = json.loads(resp.text, parse_constant=_not_json)["detail"]
    assert isinstance(detail, list) and detail
    problem = next(d for d in detail if tuple(d["loc"]) == loc)
    assert problem["msg"] and problem["type"]


def _not_json(literal: str) -> None:
    raise AssertionError(f"the answer is not strict JSON: it holds {literal}")


def test_other_validation_errors_keep_their_input(api: Api) -> None:
    resp = api.client.post("/v1/tasks", json={"event_id": 5, "rubric": "harm"},
                           headers=api.headers("lead"))
    assert resp.status_code == 422
    (problem,) = resp.json()["detail"]
    assert problem["loc"] == ["body", "event_id"] and problem["input"] == 5


def _declared(api: Api, method: str, path: str) -> dict:
    schema = api.client.get("/openapi.json", headers=api.headers("admin")).json()
    return schema["paths"][path][method]["responses"]


def test_both_422_bodies_match_the_declared_schema(api: Api) -> None:
    from hilt.api.errors import InputErrorBody, RequestValidationBody, UnprocessableBody

    declared = _declared(api, "post", "/v1/rubrics")["422"]
    ref = declared["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/UnprocessableBody")
    # hilt's own check: one message, with the field named
    checked = api.client.post("/v1/rubrics", json={"id": "x", "title": "x", "questions": []},
                              headers=api.headers("lead"))
    assert checked.status_code == 422
    body = UnprocessableBody.model_validate(checked.json()).root
    assert isinstance(body, InputErrorBody) and body.error is not None
    assert body.error.field == "questions"
    # request validation: the list of problems
    invalid = api.client.post("/v1/tasks", json={}, headers=api.headers("lead"))
    assert invalid.status_code == 422
    assert isinstance(UnprocessableBody.model_validate(invalid.json()).root,
                      RequestValidationBody)


@pytest.mark.parametrize(("method", "path", "role", "status"), [
    ("get", "/v1/tasks/{task_id}", "reviewer", 403),
    ("get", "/v1/tasks/{task_id}", "lead", 404),
    ("post", "/v1/queue/tasks/{task_id}/heartbeat", "reviewer", 404),
    ("post", "/v1/escalation/rule-sets/{rule_set_id}/{version}/activate", "lead", 404)])
def test_error_statuses_are_declared(api: Api, method: str, path: str, role: str,
                                     status: int) -> None:
    concrete = path.format(task_id="task_x", rule_set_id="nope", version=1)
    got = api.client.request(method.upper(), concrete, headers=api.headers(role))
    assert got.status_code == status, got.text
    declared = _declared(api, method, path)
    assert {"401", "403", "404", "409", "422"} <= set(declared)
    assert isinstance(got.json()["detail"], str)
    unauthorised = api.client.request(method.upper(), concrete)
    assert unauthorised.status_code == 401 and "401" in declared


# (route, role, body, misspelt field): request bodies name every field they take
MISSPELT = [
    ("/v1/queue/tasks/task_x/submit", "reviewer",
     {"answers": {"verdict": "safe"}, "time_spent": 12}, "time_spent"),
    ("/v1/queue/tasks/task_x/submit", "reviewer",
     {"answers": {"verdict": "safe"}, "rewritten": "better"}, "rewritten"),
    ("/v1/adjudications/task_x", "adjudicator",
     {"answers": {}, "rationale": "r", "rationle": "why", "cause": "subjective"}, "rationle"),
    ("/v1/tasks", "lead", {"event_id": "e", "rubric": "harm", "overlap_k": 5}, "overlap_k"),
    ("/v1/tasks/gold", "lead", {"event_id": "e", "rubric": "harm", "answers": {},
                                "pools": "x"}, "pools"),
    ("/v1/escalation/rule-sets", "lead", {"spec": {}, "active": False}, "active"),
    ("/v1/reviewers/r/deactivate", "lead", {"reasons": "left"}, "reasons"),
]


@pytest.mark.parametrize(("path", "role", "body", "field"), MISSPELT)
def test_an_unknown_body_field_is_a_422_naming_it(api: Api, path: str, role: str,
                                                  body: dict, field: str) -> None:
    resp = api.client.post(path, json=body, headers=api.headers(role))
    assert resp.status_code == 422, resp.text
    (problem,) = resp.json()["detail"]
    assert problem["loc"] == ["body", field] and problem["type"] == "extra_forbidden"
