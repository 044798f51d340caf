"""`hilt check` refuses options that would change nothing, and an output folder it
cannot replace, naming the option; the demo rubric's refusal options all map to
judgments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.evals.scoring import LABEL_TO_JUDGMENT
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import transaction
from tests.gate.tiny_check import small_suite_gate

ASSETS = Path(__file__).resolve().parents[2] / "src" / "hilt" / "sim" / "assets"


@pytest.fixture
def base(tmp_path: Path, jsonl: Any) -> list[str]:
    suite = jsonl(tmp_path / "s.jsonl", [
        {"id": f"q{i}", "prompt": f"p{i}", "slice": "x",
         "expect": "comply" if i < 3 else "refuse"} for i in range(6)])
    resp = jsonl(tmp_path / "r.jsonl", [
        {"id": f"q{i}", "response": "r", "judgment": "comply" if i < 3 else "refuse"}
        for i in range(6)])
    return ["check", "--suite", str(suite), "--candidate", str(resp), "--reference",
            str(resp), "--gate", str(small_suite_gate(tmp_path))]


@pytest.mark.parametrize("extra, option", [
    (["--resamples", "500"], "--resamples"),
    (["--seed", "3"], "--seed"),
    (["--rubric", "harm"], "--rubric"),
    (["--rubric", "harm", "--review-sample", "0"], "--rubric"),
    (["--review-overlap", "2"], "--review-overlap"),
    (["--review-pool", "p"], "--review-pool"),
    (["--review-question", "refusal"], "--review-question"),
])
def test_an_option_without_effect_is_refused(base: list[str], tmp_path: Path,
                                             extra: list[str], option: str) -> None:
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "o"), *extra])
    assert result.exit_code == 2, result.output
    assert f"field '{option}'" in result.output and "no effect" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("out", [".", "..", "./"])
def test_out_cannot_be_the_current_folder(base: list[str], tmp_path: Path, out: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = CliRunner().invoke(app, [*base, "--out", out])
    assert result.exit_code == 2, result.output
    assert "field '--out'" in result.output and "current folder" in result.output
    assert "Errno" not in result.output and list(work.iterdir()) == []


def test_the_demo_rubric_options_map_to_judgments() -> None:
    for name in ("rubric_v1.yaml", "rubric_v2.yaml"):
        spec = load_rubric_file(ASSETS / name)
        (question,) = [q for q in spec.questions if q.id == "refusal"]
        values = [str(getattr(o, "value", o)) for o in question.options or []]
        assert {LABEL_TO_JUDGMENT.get(v) for v in values} == {"comply", "refuse"}, values


def test_a_review_sample_under_the_demo_rubric(base: list[str], tmp_path: Path,
                                               db_url: str, engine: Engine) -> None:
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(ASSETS / "rubric_v1.yaml"), actor="lead")
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "o"), "--db", db_url,
                                      "--review-sample", "2", "--rubric", "demo-safety"])
    assert result.exit_code == 0, result.output
    assert "2 review tasks under demo-safety@1" in result.output
