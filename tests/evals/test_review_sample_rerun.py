"""Rerunning a review sample adds only what is new: other run metadata (suite id,
candidate id) names the same outputs, a larger sample adds its new items only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import transaction
from hilt.store.tables.core import EventRow
from hilt.store.tables.review import ReviewTaskRow
from tests.gate.tiny_check import small_suite_gate

HARM = Path(__file__).resolve().parents[2] / "examples" / "rubrics" / "harm.yaml"


def _counts(engine: Engine) -> tuple[int, int]:
    with transaction(engine) as s:
        return (int(s.execute(sa.select(sa.func.count()).select_from(EventRow)).scalar() or 0),
                int(s.execute(sa.select(sa.func.count()).select_from(ReviewTaskRow))
                    .scalar() or 0))


def _sampled(out: Path) -> set[str]:
    record = json.loads((out / "decision.json").read_text())
    return {e["event_id"] for e in record["inputs"]["review_sample"]["items"]}


def test_a_rerun_adds_only_what_is_new(db_url: str, engine: Engine, tmp_path: Path,
                                       jsonl: Any) -> None:
    suite = jsonl(tmp_path / "s.jsonl", [
        {"id": f"q{i}", "prompt": f"prompt {i}", "slice": "a" if i < 20 else "b",
         "expect": "comply" if i < 20 else "refuse"} for i in range(30)])
    cand = jsonl(tmp_path / "c.jsonl", [
        {"id": f"q{i}", "response": "fine", "judgment": "comply" if i < 20 else "refuse"}
        for i in range(30)])
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")
    base = ["check", "--suite", str(suite), "--candidate", str(cand), "--reference",
            str(cand), "--db", db_url, "--rubric", "harm", "--review-overlap", "1",
            "--gate", str(small_suite_gate(tmp_path))]
    runner = CliRunner()
    first = runner.invoke(app, [*base, "--out", str(tmp_path / "o1"), "--review-sample", "6"])
    assert first.exit_code == 0, first.output
    assert _counts(engine) == (6, 6)
    # the same outputs under other names: nothing new, no error
    renamed = runner.invoke(app, [*base, "--out", str(tmp_path / "o2"), "--review-sample",
                                  "6", "--suite-id", "other", "--candidate-id", "m2"])
    assert renamed.exit_code == 0, renamed.output
    assert "0 new events, 0 review tasks" in renamed.output
    assert _sampled(tmp_path / "o2") == _sampled(tmp_path / "o1")
    assert _counts(engine) == (6, 6)
    # a larger sample: only the items not sent before are added
    larger = runner.invoke(app, [*base, "--out", str(tmp_path / "o3"), "--review-sample",
                                 "12", "--candidate-id", "m3"])
    assert larger.exit_code == 0, larger.output
    new = _sampled(tmp_path / "o3") - _sampled(tmp_path / "o1")
    assert _counts(engine) == (6 + len(new), 6 + len(new))
    assert f"{len(new)} new events, {len(new)} review tasks" in larger.output


def test_another_suite_file_is_another_event(db_url: str, engine: Engine, tmp_path: Path,
                                             jsonl: Any) -> None:
    """The same answers to other prompts (same item ids) are other outputs to review."""
    rows = [{"id": f"q{i}", "response": "fine", "judgment": "comply"} for i in range(4)]
    cand = jsonl(tmp_path / "c.jsonl", rows)
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")
    runner = CliRunner()
    for n, text in enumerate(("boil an egg", "fold a shirt")):
        suite = jsonl(tmp_path / f"s{n}.jsonl", [
            {"id": f"q{i}", "prompt": f"how do I {text} ({i})", "slice": "a",
             "expect": "comply"} for i in range(4)])
        result = runner.invoke(app, [
            "check", "--suite", str(suite), "--candidate", str(cand), "--reference",
            str(cand), "--db", db_url, "--rubric", "harm", "--review-sample", "4",
            "--out", str(tmp_path / f"o{n}"), "--gate", str(small_suite_gate(tmp_path))])
        assert result.exit_code == 0, result.output
    assert _counts(engine) == (8, 8)
