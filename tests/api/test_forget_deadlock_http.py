"""``POST /v1/datasets/forget-subject``: an erasure that PostgreSQL picks as a deadlock's
victim is run again in a new transaction and answered once, as ``hilt forget`` does."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import hilt.data.forget as forget_module
from hilt.store.db import DEADLOCK_DETECTED
from tests.api.conftest import Api


class _Orig(Exception):
    sqlstate = DEADLOCK_DETECTED


def test_a_deadlocked_erasure_over_http_is_run_again(api: Api,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"events": [{"id": f"e{i}", "interaction": {"prompt": f"p{i}"},
                        "responses": [{"text": "r"}],
                        "context": {"consent": ["review"], "subject_id": "zed"}}
                       for i in range(2)]}
    assert api.client.post("/v1/events", json=body,
                           headers=api.headers("service")).status_code == 200
    real, calls = forget_module.erase_subject, []

    def erase(session: Session, *args: Any, **kwargs: Any) -> Any:
        result = real(session, *args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            session.flush()
            raise sa.exc.OperationalError("UPDATE …", {}, _Orig())
        return result

    monkeypatch.setattr(forget_module, "erase_subject", erase)
    answer = api.client.post("/v1/datasets/forget-subject", json={"subject_id": "zed"},
                             headers=api.headers("lead"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["events_erased"] == 2 and len(calls) == 2
    for i in range(2):
        shown = api.client.get(f"/v1/events/e{i}", headers=api.headers("lead")).json()
        assert shown["erased"] is True
