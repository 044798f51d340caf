"""Rubric errors name the file, the line and the field: a worked example's wrong answer
at the answer's own line, a missing or blank changelog with the file, and what
``required`` takes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import make_engine, migrate, transaction

RUBRIC = ("id: ex\ntitle: Example\nquestions:\n  - id: v\n    kind: single_choice\n"
          "    prompt: ok?\n    options: [a, b]\n")


def test_a_wrong_worked_example_answer_is_named_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "badex.yaml"
    path.write_text(RUBRIC + "examples:\n  - prompt: hi\n    answers:\n      v: c\n")
    with pytest.raises(InputError) as err:
        load_rubric_file(path)
    assert (err.value.file, err.value.line, err.value.field) == (
        str(path), 11, "examples.0.answers.v")
    assert err.value.reason == "must be one of ['a', 'b']"


@pytest.mark.parametrize(("changelog", "line"), [("", None), ('changelog: " "\n', 8)])
def test_a_second_version_without_a_changelog_names_the_file(
        engine: Engine, tmp_path: Path, changelog: str, line: int | None) -> None:
    first, second = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    first.write_text(RUBRIC)
    second.write_text(RUBRIC.replace("Example", "Example two") + changelog)
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(first), actor="lead")
    with pytest.raises(InputError) as err, transaction(engine) as s:
        publish_rubric(s, load_rubric_file(second), actor="lead")
    assert (err.value.file, err.value.line, err.value.field) == (
        str(second), line, "changelog")


def test_the_publish_command_prints_the_file_of_a_missing_changelog(tmp_path: Path
                                                                    ) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    migrate(make_engine(db))
    path = tmp_path / "r.yaml"
    path.write_text(RUBRIC)
    runner = CliRunner()
    assert runner.invoke(app, ["rubric", "publish", str(path), "--db", db]).exit_code == 0
    path.write_text(RUBRIC.replace("ok?", "fine?"))
    result = runner.invoke(app, ["rubric", "publish", str(path), "--db", db])
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith(f"{path}, field 'changelog': ")


@pytest.mark.parametrize(("value", "required"), [("yes", True), ("off", False),
                                                  ("true", True)])
def test_required_takes_yaml_booleans(tmp_path: Path, value: str, required: bool) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RUBRIC + f"    required: {value}\n")
    assert load_rubric_file(path).questions[0].required is required


@pytest.mark.parametrize("value", ["1", '"yes"'])
def test_required_refuses_numbers_and_quoted_words(tmp_path: Path, value: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RUBRIC + f"    required: {value}\n")
    with pytest.raises(InputError) as err:
        load_rubric_file(path)
    assert (err.value.line, err.value.field) == (8, "questions.0.required")
