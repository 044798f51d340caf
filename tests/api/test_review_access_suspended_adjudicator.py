"""An adjudicator the quality stage suspended settles no disputes, over HTTP, the pages,
the CLI or the library, as the queue gives them no tasks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.cli import main
from hilt.errors import Forbidden
from hilt.events.ingest import ingest_events
from hilt.review import adjudication, queue, tasks
from hilt.review.reviews import Submission, submit_review
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import make_engine, migrate, transaction
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.review import ReviewTaskRow
from tests.api.conftest import calibrated
from tests.review.helpers import HARM, event
from tests.web.asgi import BASE, sign_in

ANSWERS = {"refusal": "complies", "helpfulness": 3}
DECISION = {"answers": {"verdict": "safe"}, "rationale": "safe as written",
            "cause": "reviewer_error"}


def _disputed(engine: Engine) -> str:
    """A task whose two reviews disagree, waiting for adjudication; kim is suspended."""
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")
        calibrated(s, [("kim", "adjudicator"), ("r1", "reviewer"), ("r2", "reviewer")],
                   tokens=False)
    ev = event(1)
    ingest_events(engine, [ev], actor="service")
    with transaction(engine) as s:
        task_id = tasks.create_task(s, event_id=ev["id"], rubric="harm", actor="lead",
                                    overlap_k=2)
    for rid, verdict in (("r1", "safe"), ("r2", "harmful")):
        with transaction(engine) as s:
            claim = queue.claim_next(s, rid)
            assert claim is not None
        with transaction(engine) as s:
            submit_review(s, task_id, rid, Submission({"verdict": verdict, **ANSWERS}))
    with transaction(engine) as s:
        assert s.get_one(ReviewTaskRow, task_id).status == "needs_adjudication"
        s.get_one(ReviewerRow, "kim").status = "suspended"
    return task_id


def test_a_suspended_adjudicator_may_not_adjudicate(engine: Engine) -> None:
    task_id = _disputed(engine)
    with transaction(engine) as s:
        token = create_token(s, role="adjudicator", reviewer_id="kim")[1]
    with TestClient(create_app(engine), base_url=BASE) as http:
        refused = http.post(f"/v1/adjudications/{task_id}", json=DECISION,
                            headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 403 and "suspended" in refused.text
        csrf = sign_in(http, token)
        page = http.post(f"/ui/adjudicate/{task_id}", follow_redirects=False, data={
            "csrf_token": csrf, "q.verdict": "safe", "rationale": "safe as written",
            "cause": "reviewer_error"})
        assert page.status_code == 403
    with transaction(engine) as s, pytest.raises(Forbidden, match="suspended"):
        adjudication.adjudicate(s, task_id, "kim", answers={"verdict": "safe"},
                                rationale="x", cause="reviewer_error")
    with transaction(engine) as s:
        assert s.get_one(ReviewTaskRow, task_id).status == "needs_adjudication"
        # reinstated (an onboarding adjudicator, as a new one is, may decide)
        s.get_one(ReviewerRow, "kim").status = "onboarding"
    with transaction(engine) as s:
        adjudication.adjudicate(s, task_id, "kim", answers={"verdict": "safe"},
                                rationale="x", cause="reviewer_error")


def test_the_cli_refuses_a_suspended_adjudicator_with_exit_code_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(url)
    migrate(engine)
    task_id = _disputed(engine)
    monkeypatch.setattr(sys, "argv", [
        "hilt", "adjudicate", "decide", task_id, "--adjudicator", "kim", "--answers",
        '{"verdict": "safe"}', "--rationale", "x", "--cause", "reviewer_error",
        "--db", url])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 2
    assert "'kim' is suspended and may not adjudicate" in capsys.readouterr().err
    with transaction(engine) as s:
        assert s.get_one(ReviewTaskRow, task_id).status == "needs_adjudication"
