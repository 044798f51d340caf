"""Number options that ``nan`` and ``inf`` slipped past (``nan <= 0`` is false): SFT's
``--epochs`` and ``--learning-rate`` and a TRL reward model's ``--epochs`` are refused
naming the option, exit 2, before any work. Before, ``--epochs nan`` stopped with a
traceback and ``--learning-rate inf`` trained and saved a model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.train.options import check_positive
from tests.ops.climain import run_hilt


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 0, -1.5, True])
def test_check_positive_refuses(value: float) -> None:
    with pytest.raises(InputError) as err:
        check_positive(value, "--epochs")
    assert err.value.field == "--epochs"


def test_check_positive_takes_a_fraction_of_an_epoch() -> None:
    assert check_positive(0.5, "--epochs") == 0.5


@pytest.mark.parametrize(("option", "value"), [
    ("--epochs", "nan"), ("--epochs", "inf"),
    ("--learning-rate", "nan"), ("--learning-rate", "inf"),
])
def test_sft_refuses(tmp_path: Path, option: str, value: str) -> None:
    data = tmp_path / "sft.jsonl"
    data.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    done = run_hilt(["train", "sft", "--data", str(data), "--out", str(tmp_path / "m"),
                     "--no-register", "--no-progress", option, value])
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: field '{option}': must be a positive finite number, got {value}"]
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_trl_reward_refuses_epochs(tmp_path: Path, value: str) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    done = run_hilt(["train", "reward", "--model", "tiny", "--pairs", str(pairs), "--out",
                     str(tmp_path / "rm"), "--no-register", "--no-progress", "--epochs",
                     value])
    assert done.returncode == 2, done.stderr
    assert "field '--epochs'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "rm").exists()
