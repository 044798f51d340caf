"""One bound on a task's time to resolve: (0, a year], by hand, over HTTP and in rules."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.review.escalation import load_rule_file
from hilt.review.rules import MAX_OVERLAP, MAX_SLA_HOURS
from hilt.review.tasks import create_task
from hilt.store.db import make_engine, migrate, transaction

from .helpers import SAFETY_RULES, event, ingest, publish_examples

OUT_OF_RANGE = [math.nan, math.inf, 1e12, MAX_SLA_HOURS + 1, -1.0, 0.0]


@pytest.mark.parametrize("hours", OUT_OF_RANGE)
def test_create_task_refuses_a_time_to_resolve_outside_a_year(engine: Engine,
                                                               hours: float) -> None:
    publish_examples(engine)
    ingest(engine, [event(1), event(2)])
    with pytest.raises(InputError) as err, transaction(engine) as s:
        create_task(s, event_id="ev00001", rubric="harm", actor="lead", sla_hours=hours)
    assert err.value.field == "sla_hours"
    with transaction(engine) as s:  # the bounds themselves are accepted
        for i, ok in ((1, 0.5), (2, MAX_SLA_HOURS)):
            assert create_task(s, event_id=f"ev{i:05d}", rubric="harm", actor="lead",
                               sla_hours=ok)


@pytest.mark.parametrize("hours", ["nan", "inf", "1e12", "-1", "0"])
def test_task_create_command_names_the_sla_option(tmp_path: Path, hours: str) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(db)
    migrate(engine)
    publish_examples(engine)
    ingest(engine, [event(1)])
    result = CliRunner().invoke(app, ["task", "create", "--event", "ev00001", "--rubric",
                                      "harm", "--sla-hours", hours, "--db", db])
    assert isinstance(result.exception, InputError), result.output
    assert result.exception.field == "--sla-hours"
    assert "at most 8760 hours" in str(result.exception)


def test_the_api_and_rule_files_share_the_bound(engine: Engine, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from hilt.access import add_reviewer, create_token
    from hilt.api.app import create_app

    publish_examples(engine)
    ingest(engine, [event(1)])
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="lead", role="lead")
        token = create_token(s, role="lead", reviewer_id="lead")[1]
    with TestClient(create_app(engine)) as http:
        resp = http.post("/v1/tasks", headers={"Authorization": f"Bearer {token}"},
                         json={"event_id": "ev00001", "rubric": "harm",
                               "sla_hours": MAX_SLA_HOURS + 1})
    assert resp.status_code == 422 and "sla_hours" in resp.text
    rules = yaml.safe_load(SAFETY_RULES.read_text())
    rules["rules"][0]["sla_hours"] = MAX_SLA_HOURS + 1
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    with pytest.raises(InputError, match="sla_hours"):
        load_rule_file(path)


@pytest.mark.parametrize("overlap", [0, MAX_OVERLAP + 1])
def test_create_task_bounds_the_overlap_as_rules_and_the_api_do(engine: Engine,
                                                                overlap: int) -> None:
    publish_examples(engine)
    ingest(engine, [event(1)])
    with pytest.raises(InputError) as err, transaction(engine) as s:
        create_task(s, event_id="ev00001", rubric="harm", actor="lead", overlap_k=overlap)
    assert err.value.field == "overlap"
    with transaction(engine) as s:
        assert create_task(s, event_id="ev00001", rubric="harm", actor="lead",
                           overlap_k=MAX_OVERLAP)
