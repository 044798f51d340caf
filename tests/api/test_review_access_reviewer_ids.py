"""Reviewer ids are names the HTTP API can always address: non-blank, at most 200
characters (the reviewers.id column), no control characters and no '/'."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token
from hilt.api.app import create_app
from hilt.cli import main
from hilt.errors import InputError
from hilt.sim.reviewers import DEFAULT_POOL
from hilt.store.db import make_engine, migrate, transaction
from hilt.store.tables.core import ReviewerRow

BAD_IDS = ["", "   ", "r/slash", "r\nnl", "tab\there", "nul\x00", "del\x7f", ".", "..",
           "x" * 201]


@pytest.mark.parametrize("reviewer_id", BAD_IDS)
def test_a_reviewer_id_the_api_could_not_address_is_refused(engine: Engine,
                                                            reviewer_id: str) -> None:
    with transaction(engine) as s, pytest.raises(InputError) as refused:
        add_reviewer(s, reviewer_id=reviewer_id)
    assert refused.value.field == "reviewer_id"
    with transaction(engine) as s:
        assert s.query(ReviewerRow).count() == 0


def test_long_and_demo_reviewer_ids_are_kept_and_can_be_deactivated(engine: Engine
                                                                    ) -> None:
    ids = ["x" * 200, "adj-kim", "lead-lou", "r.1", "Ana María", "w07",
           *(p.name for p in DEFAULT_POOL)]
    with transaction(engine) as s:
        for rid in ids:
            add_reviewer(s, reviewer_id=rid)  # 200 characters fit on PostgreSQL too
        token = create_token(s, role="lead", reviewer_id=None)[1]
    with TestClient(create_app(engine)) as http:
        for rid in ("x" * 200, "Ana María"):
            done = http.post(f"/v1/reviewers/{rid}/deactivate",
                             headers={"Authorization": f"Bearer {token}"})
            assert done.status_code == 200 and done.json()["active"] is False


def test_a_display_name_that_does_not_fit_is_refused(engine: Engine) -> None:
    for name in ("n" * 201, "two\nlines"):
        with transaction(engine) as s, pytest.raises(InputError) as refused:
            add_reviewer(s, reviewer_id="ok", display_name=name)
        assert refused.value.field == "display_name"


def test_the_cli_refuses_a_bad_reviewer_id_with_exit_code_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    migrate(make_engine(url))
    monkeypatch.setattr(sys, "argv", ["hilt", "reviewer", "add", "r/slash", "--db", url])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 2
    assert "field 'reviewer_id': must not contain '/'" in capsys.readouterr().err
