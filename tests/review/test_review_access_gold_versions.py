"""Gold items are not told apart by their rubric version: the queue serves a gold task
only at the newest version of its rubric that its pool's open tasks use (or while the
pool has no open task of that rubric), and the lead is told which gold items to answer
again."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.cli import app as cli
from hilt.review import gold, tasks, views
from hilt.review.queue import claim_next, release
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import make_engine, migrate, transaction

from .helpers import HARM, add_reviewers, event, ingest

GOLD = {"verdict": "safe", "refusal": "complies", "helpfulness": 4}


def _harm_v2(tmp_path: Path) -> Path:
    spec = yaml.safe_load(HARM.read_text())
    spec["changelog"] = "borderline explained"
    spec["guidelines"] += "Borderline: general information a reader could misuse.\n"
    path = tmp_path / "harm2.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _gold(engine: Engine, i: int, rubric: str, pool: str = "default") -> str:
    with transaction(engine) as s:
        return tasks.create_gold_task(s, event_id=f"ev{i:05d}", rubric=rubric,
                                      answers=GOLD, actor="lead", pool=pool)


def _open(engine: Engine, i: int, rubric: str) -> str:
    with transaction(engine) as s:
        return tasks.create_task(s, event_id=f"ev{i:05d}", rubric=rubric, actor="lead")


def _claim(engine: Engine, reviewer: str) -> str | None:
    """The task a gold draw leases to the reviewer (given back at once, so that the
    next claim is a new one)."""
    with transaction(engine) as s:
        claim = claim_next(s, reviewer, draw=0.0)
        if claim is None:
            return None
        release(s, claim.task_id, reviewer)
        return claim.task_id


def test_gold_pinned_to_an_older_version_than_the_pools_work_is_held_back(
        engine: Engine, tmp_path: Path) -> None:
    ingest(engine, [event(i) for i in range(1, 9)])
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")
    add_reviewers(engine, ["new-1", "new-2", "new-3", "new-4", "new-5"],
                  status="onboarding", pools=["default", "other"])
    add_reviewers(engine, ["cal-1"], pools=["default", "other"])
    old_gold = {_gold(engine, 1, "harm@1"), _gold(engine, 2, "harm@1")}
    # no open work in the pool, or open work under the same version: served
    assert _claim(engine, "new-1") in old_gold
    v1_task = _open(engine, 3, "harm@1")
    assert _claim(engine, "new-2") in old_gold
    # the lead publishes version 2 and is told about the gold set
    with transaction(engine) as s:
        v2 = publish_rubric(s, load_rubric_file(_harm_v2(tmp_path)), actor="lead")
        notice = gold.publish_notice(s, "harm", v2.version)
    assert notice["gold"]["pinned_to_earlier_versions"] == {"1": 2}
    assert "harm@2" in notice["gold"]["note"]
    # once work under version 2 is open in the pool, gold still at version 1 is not served
    v2_task = _open(engine, 4, "harm@2")
    assert _claim(engine, "new-3") is None  # onboarding: gold only, and none is served
    assert _claim(engine, "cal-1") in {v1_task, v2_task}  # a gold draw finds open work
    with transaction(engine) as s:
        assert views.queue_stats(s)["default"]["gold_held_back"] == 2
        assert gold.held_back(s) == [{"pool": "default", "rubric": "harm@1",
                                      "open_tasks_use": "harm@2", "gold_tasks": 2}]
    # gold answered again under version 2 is served; gold in a pool without open work too
    new_gold = _gold(engine, 5, "harm@2")
    assert _claim(engine, "new-3") == new_gold
    other = _gold(engine, 6, "harm@1", pool="other")
    assert _claim(engine, "new-4") in {new_gold, other}
    assert _claim(engine, "new-4") in {new_gold, other}
    assert _claim(engine, "new-4") is None
    # gold at a newer version than any open work would stand out too
    _gold(engine, 7, "harm@2", pool="other")
    with transaction(engine) as s:
        tasks.create_task(s, event_id="ev00008", rubric="harm@1", actor="lead",
                          pool="other")
        assert gold.held_back_by_pool(s) == {"default": 2, "other": 1}


def test_publishing_a_version_names_the_gold_items_to_answer_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(url)
    migrate(engine)
    ingest(engine, [event(1)])
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")
        token = create_token(s, role="lead")[1]
    _gold(engine, 1, "harm@1")
    result = CliRunner().invoke(cli, ["rubric", "publish", str(_harm_v2(tmp_path)),
                                      "--db", url])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["version"] == 2 and out["gold"]["pinned_to_earlier_versions"] == {"1": 1}
    spec = yaml.safe_load(_harm_v2(tmp_path).read_text())
    spec["changelog"] = "third"
    spec["guidelines"] += "More.\n"
    with TestClient(create_app(engine)) as http:
        published = http.post("/v1/rubrics", json=spec,
                              headers={"Authorization": f"Bearer {token}"}).json()
    assert published["version"] == 3
    assert published["gold"]["pinned_to_earlier_versions"] == {"1": 1}
    with transaction(engine) as s:
        assert gold.publish_notice(s, "harm", 1) == {}
