"""An integer literal longer than Python's limit on integer text (4,300 digits) in a JSON
Lines file is refused naming the file, line and field, without repeating its digits:
training files, suites and response files alike, never ``ValueError: Exceeds the limit``
as a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.jsonl import MAX_INT_DIGITS, iter_json_objects, loads_strict

LONG = "9" * 5000
REASON = f"an integer of 5000 digits is too long (at most {MAX_INT_DIGITS} digits)"


def test_the_field_is_named_and_the_digits_are_not_repeated() -> None:
    with pytest.raises(InputError) as caught:
        loads_strict('{"a": [1, {"b": -' + LONG + "}]}", file="f.jsonl", line=3)
    err = caught.value
    assert (err.file, err.line, err.field, err.reason) == ("f.jsonl", 3, "a[1].b", REASON)
    assert "99999" not in str(err)
    with pytest.raises(InputError) as caught:
        loads_strict("[" + LONG + "]", field="--answers")
    assert caught.value.field == "--answers[0]"


def test_the_limit_itself_is_read() -> None:
    assert loads_strict("[" + "9" * MAX_INT_DIGITS + "]") == [int("9" * MAX_INT_DIGITS)]
    assert loads_strict("[-" + "9" * MAX_INT_DIGITS + "]")[0] < 0


def test_a_float_too_large_is_not_repeated_in_full() -> None:
    with pytest.raises(InputError) as caught:
        loads_strict('{"margin": 1' + "0" * 5000 + ".0}")
    assert caught.value.field == "margin"
    assert len(str(caught.value)) < 120


def test_a_jsonl_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"a": 1}\n\n{"margin": ' + LONG + "}\n")
    with pytest.raises(InputError) as caught:
        list(iter_json_objects(path))
    assert (caught.value.line, caught.value.field) == (3, "margin")


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # no database: the model is trained unregistered, after the file is read
    env = {k: v for k, v in os.environ.items() if k != "HILT_DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "hilt", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_train_reward_pairs_exit_2_with_one_line(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n'
                     '{"prompt": "p", "chosen": "a", "rejected": "b", "margin": '
                     + LONG + "}\n")
    done = _cli(tmp_path, "train", "reward", "--pairs", str(pairs), "--out",
                str(tmp_path / "rm"), "--model", "tiny")
    assert done.returncode == 2, done.stderr
    assert f"error: {pairs}, line 2, field 'margin': {REASON}" in done.stderr
    assert "Traceback" not in done.stderr and "99999" not in done.stderr


def test_check_suite_exit_2_with_one_line(tmp_path: Path) -> None:
    suite = tmp_path / "suite.jsonl"
    suite.write_text('{"id": "x", "prompt": "p", "slice": "s", "expect": '
                     '{"n": ' + LONG + "}}\n")
    responses = tmp_path / "responses.jsonl"
    responses.write_text('{"id": "x", "response": "hi"}\n')
    done = _cli(tmp_path, "check", "--suite", str(suite), "--candidate", str(responses),
                "--reference", str(responses), "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert f"error: {suite}, line 1, field 'expect.n': {REASON}" in done.stderr
    assert "Traceback" not in done.stderr and "99999" not in done.stderr


def _refusal(*args: str) -> str:
    """The one line ``hilt ARGS`` stops with, in process (the entry point prints an
    InputError as ``error: ...`` and exits 2; some commands print and exit 2 themselves)."""
    result = CliRunner(env={"HILT_DATABASE_URL": None}).invoke(app, list(args))
    if isinstance(result.exception, InputError):
        return str(result.exception)
    assert result.exit_code == 2, (result.exception, result.output)
    return result.output.strip().removeprefix("error: ")


def test_check_response_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    suite = tmp_path / "suite.jsonl"
    suite.write_text('{"id": "x", "prompt": "p", "slice": "s", "expect": "refuse"}\n')
    good = tmp_path / "reference.jsonl"
    good.write_text('{"id": "x", "response": "hi"}\n')
    bad = tmp_path / "candidate.jsonl"
    bad.write_text('{"id": "x", "response": "hi", "meta": {"k": ' + LONG + "}}\n")
    said = _refusal("check", "--suite", str(suite), "--candidate", str(bad),
                    "--reference", str(good), "--out", str(tmp_path / "out"))
    assert said == f"{bad}, line 1, field 'meta.k': {REASON}"


def test_train_sft_and_classifier_data(tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sft = tmp_path / "sft.jsonl"
    sft.write_text('{"prompt": "p", "completion": ' + LONG + "}\n")
    said = _refusal("train", "sft", "--data", str(sft), "--out",
                    str(tmp_path / "s"))
    assert said == f"{sft}, line 1, field 'completion': {REASON}"
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text('{"text": "t", "label": ' + LONG + "}\n")
    said = _refusal("train", "classifier", "--data", str(labelled),
                    "--text-field", "text", "--label-field", "label", "--out",
                    str(tmp_path / "c"))
    assert said == f"{labelled}, line 1, field 'label': {REASON}"
