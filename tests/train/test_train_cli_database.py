"""The train and models commands open the database as every other command does: never
creating or migrating it, and refusing a missing or outdated one before any training."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from tests.conftest import empty_pg_schema, older_sqlite

TRAINERS = {  # command -> the function that trains (it must not be reached)
    "classifier": "hilt.train.classifier_refresh.refresh_classifier",
    "reward": "hilt.train.reward_refresh.refresh_reward_model",
    "sft": "hilt.train.sft.train_sft",
}


def _invoke(args: list[str]) -> Any:
    return CliRunner().invoke(app, args)


def _train_args(command: str, tmp_path: Path) -> list[str]:
    """Good arguments for ``hilt train COMMAND`` on a small file."""
    rows = tmp_path / "rows.jsonl"
    if command == "classifier":
        rows.write_text('{"t": "No.", "y": "refuse"}\n{"t": "Yes.", "y": "comply"}\n')
        return ["train", "classifier", "--data", str(rows), "--text-field", "t",
                "--label-field", "y", "--out", str(tmp_path / "model")]
    if command == "reward":
        rows.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
        return ["train", "reward", "--pairs", str(rows), "--out", str(tmp_path / "model")]
    rows.write_text('{"prompt": "p", "completion": "c"}\n')
    return ["train", "sft", "--data", str(rows), "--out", str(tmp_path / "model")]


# reward reads its encoder's config first (transformers): seconds
@pytest.mark.parametrize("command", ["classifier", pytest.param("reward", marks=pytest.mark.slow),
                                     "sft"])
def test_training_refuses_a_missing_or_older_database_before_it_trains(
        command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("training started")

    monkeypatch.setattr(TRAINERS[command], never)
    args = _train_args(command, tmp_path)
    missing = tmp_path / "missing.db"
    done = _invoke([*args, "--db", f"sqlite:///{missing}"])
    assert isinstance(done.exception, InputError), done.output
    assert done.exception.field == "--db" and "no hilt schema" in str(done.exception)
    assert not missing.exists() and not (tmp_path / "model").exists()
    done = _invoke([*args, "--db", older_sqlite(tmp_path / "old.db")])
    assert isinstance(done.exception, InputError), done.output
    assert "older than this hilt" in str(done.exception)
    assert not (tmp_path / "model").exists()


@pytest.fixture
def empty_postgres_schema() -> Iterator[str]:
    with empty_pg_schema("hilt_empty") as schema:
        yield schema


def _tables(schema: str) -> list[str]:
    from tests.conftest import PG_URL

    engine = sa.create_engine(PG_URL)
    try:
        return sa.inspect(engine).get_table_names(schema=schema)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_models_and_training_leave_an_empty_postgres_schema_empty(
        empty_postgres_schema: str, tmp_path: Path) -> None:
    from tests.conftest import pg_url_for

    url = pg_url_for(empty_postgres_schema)
    for args in (["models", "list"], ["models", "show", "nope"],
                 _train_args("classifier", tmp_path)):
        done = _invoke([*args, "--db", url])
        assert isinstance(done.exception, InputError), (args, done.output)
        assert "no hilt schema" in str(done.exception), args
    assert _tables(empty_postgres_schema) == []
    assert not (tmp_path / "model").exists()


def test_classifier_max_length_must_fit_the_encoder(tmp_path: Path) -> None:
    args = _train_args("classifier", tmp_path)
    for value, ok in (("2", False), ("3", True), ("512", True), ("513", False),
                      ("100000", False)):
        done = _invoke([*args, "--max-length", value, "--opening-chars", "0",
                        "--no-register"])
        assert isinstance(done.exception, InputError), done.output
        # an accepted length lets the next option's check speak
        expected = "--opening-chars" if ok else "--max-length"
        assert done.exception.field == expected, value
        if not ok:
            assert "3..512" in str(done.exception)
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(("option", "value"), [("--head", "deep"),
                                                ("--threshold-rule", "median")])
def test_head_and_threshold_rule_are_each_named(tmp_path: Path, option: str,
                                                value: str) -> None:
    done = _invoke([*_train_args("classifier", tmp_path), option, value, "--no-register"])
    assert isinstance(done.exception, InputError), done.output
    assert done.exception.field == option and repr(value) in str(done.exception)


@pytest.mark.parametrize("command", sorted(TRAINERS))
@pytest.mark.parametrize("version", ["abc", "0123456789abcdef"])
def test_a_bad_dataset_version_names_the_dataset_option(
        command: str, version: str, db_url: str, tmp_path: Path) -> None:
    args = _train_args(command, tmp_path)
    del args[2:4]  # the file option and its value: --dataset replaces them
    done = _invoke([*args, "--dataset", version, "--db", db_url])
    assert isinstance(done.exception, InputError), done.output
    assert done.exception.field == "--dataset" and version in str(done.exception)
