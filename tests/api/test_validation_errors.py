"""Bodies that fail validation get 422 with each problem's location and message, also
when the body holds NaN or Infinity literals (which strict JSON cannot carry back)."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import Api

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
