"""A refusal classifier reads a context (the prompt) exactly when it was trained with one:
`hilt eval classifier` refuses a field the model would ignore and a field it lacks, and
`hilt check --scorer` passes the suite prompt accordingly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.files import SuiteItem
from hilt.evals.scoring import classifier_inputs
from hilt.train.classifier import load_classifier
from tests.train.conftest import HashEncoder


@pytest.fixture
def rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("hilt.train.classifier.SentenceEncoder", HashEncoder)
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(
        json.dumps({"t": f"{label} answer {i}", "p": f"question {i}", "y": label}) + "\n"
        for label in ("comply", "refuse") for i in range(8)))
    return path


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _train(rows: Path, out: Path, *extra: str) -> Path:
    done = _invoke("train", "classifier", "--data", str(rows), "--text-field", "t",
                   "--label-field", "y", "--out", str(out), "--no-register", *extra)
    assert done.exit_code == 0, done.output
    return out


def _evaluate(model: Path, rows: Path, *extra: str) -> Any:
    return _invoke("eval", "classifier", "--model", str(model), "--data", str(rows),
                   "--text-field", "t", "--label-field", "y", *extra)


def test_a_context_field_for_a_model_without_context_is_refused(rows: Path,
                                                                tmp_path: Path) -> None:
    model = _train(rows, tmp_path / "plain")
    done = _evaluate(model, rows, "--context-field", "p")
    # `hilt` (hilt.cli.main) prints an InputError as one line and exits 2
    assert isinstance(done.exception, InputError), done.output
    assert done.exception.field == "--context-field"
    assert "trained without a context field" in done.exception.reason
    assert _evaluate(model, rows).exit_code == 0


def test_a_harmful_field_for_a_model_without_the_flag_is_refused(rows: Path,
                                                                 tmp_path: Path) -> None:
    model = _train(rows, tmp_path / "plain")
    done = _evaluate(model, rows, "--harmful-field", "p")
    assert isinstance(done.exception, InputError), done.output
    assert done.exception.field == "--harmful-field"
    assert "trained without a harmful-request flag" in done.exception.reason


def test_a_model_trained_with_context_needs_the_field(rows: Path, tmp_path: Path) -> None:
    model = _train(rows, tmp_path / "ctx", "--context-field", "p")
    done = _evaluate(model, rows)
    assert isinstance(done.exception, InputError), done.output
    assert done.exception.field == "--context-field"
    assert _evaluate(model, rows, "--context-field", "p").exit_code == 0


def test_the_check_gives_the_prompt_exactly_to_a_model_trained_with_context(
        rows: Path, tmp_path: Path) -> None:
    items = [SuiteItem("a", "question 1", "s", "comply", 1)]
    plain = load_classifier(_train(rows, tmp_path / "plain"))
    with_context = load_classifier(_train(rows, tmp_path / "ctx", "--context-field", "p"))
    assert "contexts" not in classifier_inputs(plain, items)
    assert classifier_inputs(with_context, items)["contexts"] == ["question 1"]
