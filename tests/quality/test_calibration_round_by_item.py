"""Calibration and probation rounds count gold items (units), not the answers to their
questions, and are judged on the share of their answers that are right, with the
item-level interval in the reason (and, where the questions are known, on each question
on its own: tests/quality/test_calibration_per_question.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from hilt.cli import app
from hilt.quality import CalibrationConfig, CusumConfig, ReviewerStatus, replay_status
from hilt.store.db import make_engine, migrate, transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.quality import ReviewerStatusChangeRow

QUESTIONS = 5


def _items(n_items: int, *, wrong: int) -> tuple[list[bool], list[int]]:
    """``n_items`` gold items of five answers each, the first ``wrong`` answers of every
    item wrong (``wrong=1``: a misjudged verdict beside four easy questions)."""
    outcomes, units = [], []
    for item in range(n_items):
        for question in range(QUESTIONS):
            outcomes.append(question >= wrong)
            units.append(item)
    return outcomes, units


def _wilson_text(right: float, n: float) -> str:
    low, high = proportion_confint(right, n, method="wilson")
    return f"95% CI {low:.2f}–{high:.2f}"


def _round_text(outcomes: list[bool], units: list[Any]) -> str:
    """The count of a round with its interval: Wilson's on Kish's effective number of
    items, ``(Σ t)² / Σ t²`` for ``t`` answers per item."""
    per_item: dict[Any, list[int]] = {}
    for right, unit in zip(outcomes, units, strict=True):
        per_item.setdefault(unit, []).append(right)
    hits, total = sum(outcomes), len(outcomes)
    effective = total ** 2 / sum(len(answers) ** 2 for answers in per_item.values())
    return (f"{hits}/{total} from {len(per_item)} items, "
            f"{_wilson_text(hits / total * effective, effective)}")


def test_onboarding_round_is_calibration_set_size_items() -> None:
    config = CalibrationConfig()  # calibration_set_size 10, pass 0.8, 2 attempts
    outcomes, units = _items(2, wrong=0)
    early = replay_status(outcomes, config, units=units)
    # 10 of 10 answers are right, but only 2 of the 10 items of the set are in.
    assert early.status is ReviewerStatus.ONBOARDING and early.changes == []
    assert early.round_items == 2 and early.failed_rounds == 0
    assert early.open_round == "calibration set not complete (2 of 10 gold items)"

    outcomes, units = _items(9, wrong=0)
    nine = replay_status(outcomes, config, units=units)
    assert nine.status is ReviewerStatus.ONBOARDING and nine.round_items == 9

    # Judged once the tenth item is in: 30 of the 50 answers are right (0.6 < 0.8).
    outcomes, units = _items(10, wrong=2)
    judged = replay_status(outcomes, config, units=units)
    assert judged.status is ReviewerStatus.ONBOARDING
    assert judged.failed_rounds == 1 and judged.round_items == 0
    assert judged.open_round == ("calibration set not complete (0 of 10 gold items, "
                                 "1 failed before)")

    outcomes, units = _items(20, wrong=2)
    failed = replay_status(outcomes, config, units=units)
    assert failed.status is ReviewerStatus.SUSPENDED
    (change,) = failed.changes
    assert change.index == 20 * QUESTIONS - 1
    assert change.reason == (f"failed calibration 2 times (last 30/50 from 10 items, "
                             f"{_wilson_text(6, 10)})")


def test_a_right_reviewer_passes_after_the_whole_set() -> None:
    outcomes, units = _items(10, wrong=0)
    trace = replay_status(outcomes[:-QUESTIONS], units=units[:-QUESTIONS])
    assert trace.status is ReviewerStatus.ONBOARDING and trace.round_items == 9
    trace = replay_status(outcomes, units=units)
    (change,) = trace.changes
    assert change.new is ReviewerStatus.CALIBRATED
    assert change.index == 10 * QUESTIONS - 1
    assert change.reason == f"passed calibration set (50/50 from 10 items, {_wilson_text(10, 10)})"


def test_a_round_is_judged_on_the_share_of_its_right_answers() -> None:
    # One wrong answer in each of the ten items: 40/50 = 0.8 passes, though no item is
    # wholly right; the interval counts the ten items, not the 50 answers.
    config = CalibrationConfig(max_calibration_attempts=1)
    outcomes, units = _items(10, wrong=1)
    passed = replay_status(outcomes, config, units=units)
    assert passed.status is ReviewerStatus.CALIBRATED
    assert passed.changes[0].reason == (f"passed calibration set (40/50 from 10 items, "
                                        f"{_wilson_text(8, 10)})")
    # One more wrong answer anywhere: 39/50 = 0.78 fails.
    outcomes[7 * QUESTIONS + 3] = False
    trace = replay_status(outcomes, config, units=units)
    assert trace.status is ReviewerStatus.SUSPENDED
    assert trace.changes[0].reason == (f"failed calibration 1 times (last 39/50 from 10 "
                                       f"items, {_wilson_text(7.8, 10)})")


def test_items_of_unequal_size_weigh_by_their_answers() -> None:
    # Nine one-answer items all right and one ten-answer item with four wrong: the round
    # is 15/19 ≈ 0.79 < 0.8 (the big item weighs by its answers), and its interval is
    # Wilson's on Kish's effective number of items, 19² / (9 + 100) ≈ 3.3, not on 10.
    config = CalibrationConfig(max_calibration_attempts=1)
    outcomes = [True] * 9 + [False] * 4 + [True] * 6
    units = list(range(9)) + [9] * 10
    trace = replay_status(outcomes, config, units=units)
    (change,) = trace.changes
    assert change.new is ReviewerStatus.SUSPENDED and change.index == 18
    assert change.reason == f"failed calibration 1 times (last {_round_text(outcomes, units)})"
    effective = 19 ** 2 / 109
    assert change.reason.endswith(f"{_wilson_text(15 / 19 * effective, effective)})")
    # Three wrong instead: 16/19 ≈ 0.84 passes.
    outcomes[12] = True
    assert replay_status(outcomes, config, units=units).status is ReviewerStatus.CALIBRATED


def test_probation_round_is_probation_length_items() -> None:
    config = CalibrationConfig(probation_length=20, recovery_accuracy=0.85)
    outcomes, units = _items(4, wrong=2)
    early = replay_status(outcomes, config, start=ReviewerStatus.PROBATION, units=units)
    # 12/20 answers: a round of 20 answers would already be a verdict.
    assert early.status is ReviewerStatus.PROBATION and early.changes == []
    assert early.open_round == "probation round not complete (4 of 20 gold items)"
    outcomes, units = _items(19, wrong=2)
    waiting = replay_status(outcomes, config, start=ReviewerStatus.PROBATION, units=units)
    assert waiting.status is ReviewerStatus.PROBATION and waiting.round_items == 19
    outcomes, units = _items(20, wrong=2)
    judged = replay_status(outcomes, config, start=ReviewerStatus.PROBATION, units=units)
    (change,) = judged.changes
    assert change.new is ReviewerStatus.SUSPENDED and change.index == 20 * QUESTIONS - 1
    assert change.reason == (f"did not recover on probation (60/100 from 20 items, "
                             f"{_wilson_text(12, 20)})")
    # 80/100 is below recovery_accuracy 0.85 as well; 100/100 recovers.
    outcomes, units = _items(20, wrong=1)
    short = replay_status(outcomes, config, start=ReviewerStatus.PROBATION, units=units)
    assert [c.new for c in short.changes] == [ReviewerStatus.SUSPENDED]
    assert short.changes[0].reason == (f"did not recover on probation (80/100 from 20 "
                                       f"items, {_wilson_text(16, 20)})")
    outcomes, units = _items(20, wrong=0)
    recovered = replay_status(outcomes, config, start=ReviewerStatus.PROBATION, units=units)
    assert [c.new for c in recovered.changes] == [ReviewerStatus.CALIBRATED]
    assert recovered.changes[0].index == 20 * QUESTIONS - 1


def test_probation_round_starts_with_the_next_item() -> None:
    # The CUSUM alarms on the third answer of a six-answer item (two errors of 1.1
    # each pass the threshold 2): the rest of that item belongs to it, not to the
    # probation round, which then takes two whole items.
    config = CalibrationConfig(probation_length=2, cusum=CusumConfig(threshold=2.0))
    outcomes = [True, False, False, True, True, True] + [True] * 12
    units = [0] * 6 + [1] * 6 + [2] * 6
    trace = replay_status(outcomes, config, start=ReviewerStatus.CALIBRATED, units=units)
    assert [(c.index, c.new) for c in trace.changes] == [
        (2, ReviewerStatus.PROBATION), (17, ReviewerStatus.CALIBRATED)]
    assert trace.changes[0].reason == "quality trend alarm (CUSUM)"
    assert trace.changes[1].reason == (f"recovered on probation (12/12 from 2 items, "
                                       f"{_wilson_text(2, 2)})")


def test_one_answer_per_item_keeps_answer_rounds() -> None:
    # Without units (or with one answer per item) a round is calibration_set_size
    # answers, as with single-question gold.
    trace = replay_status([True] * 8 + [False] * 2)
    assert trace.changes[0].index == 9
    assert trace.changes[0].reason == f"passed calibration set (8/10, {_wilson_text(8, 10)})"
    same = replay_status([True] * 8 + [False] * 2, units=[f"task{i}" for i in range(10)])
    assert same.changes == trace.changes


# --- the store and the CLI -----------------------------------------------------------

FIVE = """\
id: five
title: five
changelog: first
guidelines: g
questions:
  - {id: verdict, kind: single_choice, prompt: harmful, options: [safe, harmful]}
  - {id: q2, kind: single_choice, prompt: q2, options: [x, y]}
  - {id: q3, kind: single_choice, prompt: q3, options: [x, y]}
  - {id: q4, kind: single_choice, prompt: q4, options: [x, y]}
  - {id: q5, kind: single_choice, prompt: q5, options: [x, y]}
"""
GOLD = {"verdict": "harmful", "q2": "x", "q3": "x", "q4": "x", "q5": "x"}
WRONG_VERDICT = {**GOLD, "verdict": "safe"}
TWO_WRONG = {**WRONG_VERDICT, "q2": "y"}


def _run(db: str, *args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--db", db])
    assert result.exit_code == 0, (args, result.output, result.exception)
    return json.loads(result.output)


def _gold_setup(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path / 'hilt.db'}"
    migrate(make_engine(db))
    (tmp_path / "five.yaml").write_text(FIVE)
    events = tmp_path / "ev.jsonl"
    events.write_text("".join(
        json.dumps({"id": f"g{i}", "interaction": {"prompt": f"gold prompt {i}"},
                    "responses": [{"text": "r"}], "context": {"consent": ["review"]}}) + "\n"
        for i in range(12)))
    _run(db, "rubric", "publish", str(tmp_path / "five.yaml"))
    _run(db, "ingest", str(events))
    for i in range(10):
        _run(db, "task", "gold", "--event", f"g{i}", "--rubric", "five",
             "--answers", json.dumps(GOLD))
    return db


def _answer_gold(db: str, reviewer: str, answers: dict[str, str], n: int) -> None:
    for _ in range(n):
        task = _run(db, "queue", "next", "--reviewer", reviewer)["task_id"]
        _run(db, "review", "submit", task, "--reviewer", reviewer,
             "--answers", json.dumps(answers))


def _stored(db: str, reviewer: str) -> str:
    with transaction(make_engine(db)) as s:
        return s.get_one(ReviewerRow, reviewer).status


def test_cli_refresh_keeps_a_reviewer_onboarding_after_two_gold_items(tmp_path: Path) -> None:
    db = _gold_setup(tmp_path)
    for reviewer in ("eve", "fay", "gus"):
        _run(db, "reviewer", "add", reviewer)
    assert _stored(db, "eve") == "onboarding"
    _answer_gold(db, "eve", TWO_WRONG, 2)
    _answer_gold(db, "fay", GOLD, 2)
    _answer_gold(db, "gus", WRONG_VERDICT, 2)
    refreshed = _run(db, "quality", "refresh")
    assert refreshed["status_changes"] == []
    assert _stored(db, "eve") == _stored(db, "fay") == _stored(db, "gus") == "onboarding"
    rows = {r["reviewer"]: r for r in _run(db, "quality", "reviewers", "--json")}
    assert rows["fay"]["computed_status"] == "onboarding"
    assert rows["fay"]["open_round"] == "calibration set not complete (2 of 10 gold items)"

    # The whole set: eve has two answers of five wrong on every item (30/50) and fails
    # her first set; fay (50/50) passes on ten items. gus has 40/50 = 0.8, but every
    # verdict wrong (0/10, 95% CI 0.00–0.28): he fails his first set too.
    _answer_gold(db, "eve", TWO_WRONG, 8)
    _answer_gold(db, "fay", GOLD, 8)
    _answer_gold(db, "gus", WRONG_VERDICT, 8)
    changes = {c["reviewer"]: c for c in _run(db, "quality", "refresh")["status_changes"]}
    assert set(changes) == {"fay"}
    assert changes["fay"]["new"] == "calibrated"
    assert changes["fay"]["reason"] == (f"passed calibration set (50/50 from 10 items, "
                                        f"{_wilson_text(10, 10)})")
    assert _stored(db, "eve") == _stored(db, "gus") == "onboarding"
    rows = {r["reviewer"]: r for r in _run(db, "quality", "reviewers", "--json")}
    for reviewer in ("eve", "gus"):
        assert rows[reviewer]["open_round"] == ("calibration set not complete (0 of 10 "
                                                "gold items, 1 failed before)")
    # The same set with one failed round allowed suspends gus, naming the question.
    settings = tmp_path / "one_attempt.yaml"
    settings.write_text("calibration:\n  max_calibration_attempts: 1\n")
    changes = {c["reviewer"]: c for c in _run(
        db, "quality", "refresh", "--config", str(settings))["status_changes"]}
    assert changes["gus"]["new"] == "suspended"
    assert changes["gus"]["reason"] == (
        f"failed calibration 1 times (last 40/50 from 10 items, {_wilson_text(8, 10)}; "
        f"question 'verdict': 0/10, {_wilson_text(0, 10)}, below 0.8)")


def test_a_reviewer_passed_on_fewer_items_returns_to_onboarding(tmp_path: Path) -> None:
    # A status the machine gave on a round of answers (eve "calibrated" after two gold
    # tasks) is replayed by item at the next refresh: back to onboarding, with the
    # open calibration set as the reason.
    db = _gold_setup(tmp_path)
    _run(db, "reviewer", "add", "eve")
    _answer_gold(db, "eve", WRONG_VERDICT, 2)
    assert _run(db, "quality", "refresh")["status_changes"] == []
    now = utcnow()
    with transaction(make_engine(db)) as s:
        s.add(ReviewerStatusChangeRow(
            id="rst_stored", reviewer_id="eve", old_status="onboarding",
            new_status="calibrated", source="calibration",
            reason="passed calibration set (8/10 from 2 items, 95% CI 0.22–0.98)",
            effective_from=now, n_gold=10, actor="quality", changed_at=now))
        s.execute(sa.update(ReviewerRow).where(ReviewerRow.id == "eve")
                  .values(status="calibrated"))
    (change,) = _run(db, "quality", "refresh")["status_changes"]
    assert (change["reviewer"], change["old"], change["new"]) == ("eve", "calibrated",
                                                                 "onboarding")
    assert change["reason"] == "calibration set not complete (2 of 10 gold items)"
    assert _stored(db, "eve") == "onboarding"
    # Replaying the same data again changes nothing.
    assert _run(db, "quality", "refresh")["status_changes"] == []


@pytest.mark.parametrize("size", [1, 3])
def test_settings_sizes_count_items(size: int) -> None:
    config = CalibrationConfig(calibration_set_size=size)
    outcomes, units = _items(size, wrong=0)
    trace = replay_status(outcomes, config, units=units)
    assert trace.status is ReviewerStatus.CALIBRATED
    assert trace.changes[0].index == size * QUESTIONS - 1
