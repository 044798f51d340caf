"""``hilt quality reviewers|refresh --config``: a bad settings file stops the command
before it touches the store, naming the file and the field; JSON output is valid JSON."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.cli.quality import echo_json
from hilt.errors import HiltError
from hilt.review.queue import QueueConfig
from hilt.review.workflow import work_round_robin
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow

from .helpers import POOL, setup_operation

SMALL_POOL = tuple(p for p in POOL if p.name in ("rev-ada", "rev-ben", "rev-fox"))


def _cli(db: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--db", db])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert isinstance(result.exception, HiltError), result.exception
        return 2, str(result.exception)
    return result.exit_code, result.output


def _strict_json(text: str) -> object:
    def refuse(name: str) -> object:
        raise AssertionError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def _work(engine: Engine) -> None:
    op = setup_operation(engine, n_tasks=12, n_gold=4, seed=2, pool=SMALL_POOL)
    random.seed(0)
    work_round_robin(engine, [p.name for p in SMALL_POOL], op.answer,
                     config=QueueConfig(gold_rate=0.5))


BAD_SETTINGS = [
    # A fractional round size used to be accepted and re-run every reviewer's status
    # (un-suspending a reviewer a person had suspended).
    ("calibration:\n  calibration_set_size: 2.5\n", "calibration.calibration_set_size"),
    ("calibration:\n  window: 2.5\n", "calibration.window"),
    ("calibration:\n  confidence: 1.0\n", "calibration.confidence"),
    ("calibration: [1, 2]\n", "calibration"),  # on line 1: the others are on line 2
    ("aggregation:\n  correct_pseudocount: -1\n", "aggregation.correct_pseudocount"),
    ("aggregation:\n  tol: abc\n", "aggregation.tol"),
    ("aggregation:\n  max_iter: -5\n", "aggregation.max_iter"),
    ("aggregation:\n  reopen_low_confidence: \"no\"\n", "aggregation.reopen_low_confidence"),
]


def test_bad_settings_exit_2_and_change_nothing(engine: Engine, db_url: str,
                                                tmp_path: Path) -> None:
    _work(engine)
    code, out = _cli(db_url, "quality", "set-status", "rev-fox", "suspended",
                     "--reason", "spam")
    assert code == 0, out
    with transaction(engine) as s:
        entries = len(audit.entries(s))
    settings = tmp_path / "quality.yaml"
    for text, field in BAD_SETTINGS:
        settings.write_text(text)
        for command in (["quality", "refresh"], ["quality", "reviewers", "--json"]):
            code, out = _cli(db_url, *command, "--config", str(settings))
            line = 1 if field == "calibration" else 2
            assert code == 2 and f"{settings}, line {line}, field '{field}'" in out, out
    with transaction(engine) as s:
        assert s.execute(sa.select(ReviewerRow.status).where(
            ReviewerRow.id == "rev-fox")).scalar_one() == "suspended"
        assert len(audit.entries(s)) == entries


def test_reviewers_json_is_strict_json(engine: Engine, db_url: str) -> None:
    _work(engine)
    code, out = _cli(db_url, "quality", "reviewers", "--json")
    assert code == 0, out
    rows = _strict_json(out)
    assert isinstance(rows, list) and rows


def test_json_output_has_no_nan(capsys: pytest.CaptureFixture[str]) -> None:
    echo_json([{"low": math.nan, "high": math.inf, "n": 3}])
    assert _strict_json(capsys.readouterr().out) == [{"low": None, "high": None, "n": 3}]
