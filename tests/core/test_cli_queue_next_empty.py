"""``hilt queue next`` with nothing for the reviewer: stdout stays ``null`` for scripts,
and one line on stderr says why (the reviewer's pools; for an onboarding reviewer, that
only gold items reach them and which are held back)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hilt.cli import app
from tests.conftest import migrated_sqlite

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ANSWERS = json.dumps({"verdict": "safe", "refusal": "complies", "helpfulness": 4})


@pytest.fixture
def db(tmp_path: Path) -> str:
    return migrated_sqlite(tmp_path / "h.db")


def hilt(db: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--db", db])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    return result.exit_code, result.stdout, result.stderr


def test_a_reviewer_with_no_task_in_their_pools_is_told_which_pools(db: str) -> None:
    assert hilt(db, "reviewer", "add", "alice", "--pool", "safety", "--pool", "chat")[0] == 0
    code, out, err = hilt(db, "queue", "next", "--reviewer", "alice")
    # every new identity starts onboarding; a calibrated one is told of her pools
    assert (code, json.loads(out)) == (0, None)
    assert hilt(db, "quality", "set-status", "alice", "calibrated", "--reason", "passed")[
        0] == 0
    code, out, err = hilt(db, "queue", "next", "--reviewer", "alice")
    assert (code, json.loads(out)) == (0, None)
    assert err.count("\n") == 1
    assert err.startswith("note: no task is waiting for 'alice' in their pools "
                          "(chat, safety)")


def test_an_onboarding_reviewer_is_told_the_gold_items_are_held_back(
        db: str, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(
        {"id": f"ev{i}", "interaction": {"prompt": f"question {i}"},
         "responses": [{"text": f"answer {i}"}], "context": {"consent": ["review"]}})
        + "\n" for i in range(2)))
    assert hilt(db, "ingest", str(events))[0] == 0
    harm = EXAMPLES / "rubrics" / "harm.yaml"
    assert hilt(db, "rubric", "publish", str(harm))[0] == 0
    assert hilt(db, "task", "gold", "--event", "ev0", "--rubric", "harm@1",
                "--answers", ANSWERS)[0] == 0
    assert hilt(db, "reviewer", "add", "bob")[0] == 0
    code, out, _ = hilt(db, "queue", "next", "--reviewer", "bob")
    assert code == 0 and json.loads(out)["task_id"]  # the gold item reaches bob
    assert hilt(db, "review", "release", json.loads(out)["task_id"], "--reviewer",
                "bob")[0] == 0
    # open work moves to harm@2: the gold item at harm@1 is held back
    v2 = yaml.safe_load(harm.read_text())
    v2["changelog"] = "second version"
    v2["guidelines"] += "Borderline: general information that could be misused.\n"
    (tmp_path / "harm2.yaml").write_text(yaml.safe_dump(v2))
    assert hilt(db, "rubric", "publish", str(tmp_path / "harm2.yaml"))[0] == 0
    assert hilt(db, "task", "create", "--event", "ev1", "--rubric", "harm@2")[0] == 0

    code, out, err = hilt(db, "queue", "next", "--reviewer", "bob")
    assert (code, json.loads(out)) == (0, None)
    assert err.count("\n") == 1
    assert err.startswith("note: no calibration (gold) item is waiting for 'bob' in "
                          "their pools (default): while onboarding they receive only "
                          "gold items")
    assert "held back: 1 at harm@1 in default (open tasks use harm@2)" in err
