"""Property-based run of every operation in the OpenAPI schema: no 5xx, ever."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token
from hilt.api.app import create_app
from hilt.store.db import transaction


@pytest.mark.slow
def test_no_server_errors_on_any_operation(engine: Engine) -> None:
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="root", role="admin")
        secret = create_token(s, role="admin", reviewer_id="root")[1]
    headers = {"Authorization": f"Bearer {secret}"}
    app = create_app(engine)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "schema has no operations"
    for operation in operations:
        _fuzz(operation.as_strategy(), headers)


def _fuzz(strategy: st.SearchStrategy, headers: dict[str, str]) -> None:
    @settings(max_examples=12, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=headers)
        assert response.status_code < 500, (case.method, case.path, case.body,
                                            response.text[:500])

    run()
