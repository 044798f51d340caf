"""Seeds out of range, a --model that cannot be loaded, and options that do not apply
are refused with one line naming the option (exit 2), before any model is trained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from tests.train.conftest import synthetic_pairs, write_pairs, write_refusal_labels

DEMOS = [{"prompt": f"Question {i}?", "completion": f"Answer number {i}."} for i in range(8)]


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HILT_DATABASE_URL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sft = tmp_path / "sft.jsonl"
    sft.write_text("".join(json.dumps(r) + "\n" for r in DEMOS))
    return {"pairs": write_pairs(tmp_path / "pairs.jsonl", synthetic_pairs(10)),
            "labels": write_refusal_labels(tmp_path / "labels.jsonl"), "sft": sft,
            "out": tmp_path / "out"}


def _refused(args: list[str], out: Path) -> InputError:
    done = CliRunner().invoke(app, [*args, "--no-register", "--no-progress"])
    assert isinstance(done.exception, InputError), (args, done.output, done.exception)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith((".rm-", ".sft-",
                                                                      ".clf-"))]
    return done.exception


def _commands(files: dict[str, Path]) -> dict[str, list[str]]:
    out = str(files["out"])
    return {
        "reward": ["train", "reward", "--pairs", str(files["pairs"]), "--out", out],
        "reward-tiny": ["train", "reward", "--pairs", str(files["pairs"]), "--out", out,
                        "--model", "tiny"],
        "classifier": ["train", "classifier", "--data", str(files["labels"]),
                       "--text-field", "text", "--label-field", "y", "--out", out],
        "sft": ["train", "sft", "--data", str(files["sft"]), "--out", out],
    }


@pytest.mark.parametrize("command", ["reward", "reward-tiny", "classifier", "sft"])
@pytest.mark.parametrize("seed", ["5000000000", "-1", "4294967296"])
def test_a_seed_out_of_range_is_refused_by_every_trainer(
        files: dict[str, Path], command: str, seed: str) -> None:
    refused = _refused([*_commands(files)[command], "--seed", seed], files["out"])
    assert refused.field == "--seed" and seed in refused.reason


@pytest.mark.parametrize("command", ["reward", "sft"])
def test_a_split_seed_out_of_range_is_refused(files: dict[str, Path], command: str) -> None:
    refused = _refused([*_commands(files)[command], "--split-seed", "5000000000"],
                       files["out"])
    assert refused.field == "--split-seed"


def test_the_largest_seed_the_registry_holds_passes_the_check() -> None:
    from hilt.train.options import SEED_MAX, check_seed

    assert check_seed(SEED_MAX, "--seed") == 2**31 - 1
    with pytest.raises(InputError):
        check_seed(SEED_MAX + 1, "--seed")


def test_what_a_user_sees_for_a_bad_seed_is_one_line_and_exit_2(
        files: dict[str, Path], tmp_path: Path) -> None:
    hilt = Path(sys.executable).with_name("hilt")
    env = {**os.environ, "HILT_HOME": str(tmp_path / "home")}
    done = subprocess.run([str(hilt), *_commands(files)["sft"], "--seed", "5000000000"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: field '--seed': must lie in 0..2147483647 (2^31 - 1), got 5000000000"]


# -- --model ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["reward", "sft"])
def test_a_model_not_found_offline_is_one_error_naming_model(
        files: dict[str, Path], command: str) -> None:
    refused = _refused([*_commands(files)[command], "--model", "nosuch/model"], files["out"])
    assert refused.field == "--model" and refused.reason.startswith("not found offline")


@pytest.mark.parametrize("command", ["reward", "sft"])
def test_a_folder_without_config_is_not_a_model_folder(
        files: dict[str, Path], tmp_path: Path, command: str) -> None:
    (tmp_path / "empty").mkdir()
    refused = _refused([*_commands(files)[command], "--model", str(tmp_path / "empty")],
                       files["out"])
    assert refused.field == "--model" and "not a model folder" in refused.reason


@pytest.mark.parametrize("command", ["reward", "sft"])
def test_a_folder_without_a_tokenizer_fails_to_load_with_one_error(
        files: dict[str, Path], tmp_path: Path, command: str) -> None:
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    refused = _refused([*_commands(files)[command], "--model", str(folder)], files["out"])
    assert refused.field == "--model"
    assert refused.reason.startswith("not a model folder: it cannot be loaded")


def test_a_load_failure_of_a_hub_name_says_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.train.hf_models import load_error

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    error = load_error("someone/model", OSError("We couldn't connect\nmore lines"))
    assert error.field == "--model" and error.reason.startswith("not found (no folder")
    assert "\n" not in str(error)


# -- options that do not apply ---------------------------------------------------------

@pytest.mark.parametrize(("extra", "field"), [
    (["--view", "response"], "--view"),
    (["--view", "last_exchange"], "--view"),  # the default value, given: refused too
    (["--trainable-layers", "0"], "--trainable-layers"),
    (["--no-lexical-expert"], "--no-lexical-expert"),
    (["--cheap-features"], "--cheap-features"),
])
def test_default_model_options_are_refused_with_another_model(
        files: dict[str, Path], extra: list[str], field: str) -> None:
    refused = _refused([*_commands(files)["reward-tiny"], *extra], files["out"])
    assert refused.field == field and "default model" in refused.reason


@pytest.mark.parametrize("option", [["--split-seed", "3"], ["--held-out", "0.3"]])
def test_split_options_are_refused_with_eval_pairs(files: dict[str, Path],
                                                   option: list[str]) -> None:
    refused = _refused([*_commands(files)["reward"], "--eval-pairs", str(files["pairs"]),
                        *option], files["out"])
    assert refused.field == option[0] and "--eval-pairs" in refused.reason


@pytest.mark.parametrize(("extra", "field"), [
    (["--lora-r", "16"], "--lora-r"),
    (["--max-steps", "3", "--epochs", "2"], "--epochs"),
])
def test_sft_options_that_do_not_apply_are_refused(files: dict[str, Path],
                                                   extra: list[str], field: str) -> None:
    assert _refused([*_commands(files)["sft"], *extra], files["out"]).field == field


@pytest.mark.parametrize("target", ["--target-fpr", "--target-fnr"])
def test_a_threshold_rule_with_a_target_rate_is_refused(files: dict[str, Path],
                                                        target: str) -> None:
    refused = _refused([*_commands(files)["classifier"], target, "0.05",
                        "--threshold-rule", "accuracy"], files["out"])
    assert refused.field == "--threshold-rule" and target in refused.reason


def test_a_target_rate_is_recorded_as_the_threshold_rule() -> None:
    from hilt.train.classifier import ClassifierConfig

    assert ClassifierConfig(target_fpr=0.05).threshold_rule == "target_fpr"
    assert ClassifierConfig(target_fnr=0.1).threshold_rule == "target_fnr"
    assert ClassifierConfig().threshold_rule == "calibrated"
    assert ClassifierConfig(threshold_rule="accuracy").threshold_rule == "accuracy"


def test_an_eval_pairs_run_records_no_split_seed(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.train.reward import RewardConfig
    from hilt.train.reward_refresh import refresh_reward_model
    from tests.train.conftest import stub_reward_training

    stub_reward_training(monkeypatch)
    manifest = refresh_reward_model(synthetic_pairs(10), tmp_path / "rm",
                                    config=RewardConfig(), eval_pairs=synthetic_pairs(4, 50),
                                    split_seed=3, progress=False)
    assert manifest["split"]["split_seed"] is None
    assert manifest["split"]["held_out_fraction"] is None


# -- the train.reward job's parameters --------------------------------------------------

@pytest.fixture
def job_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HILT_JOB_ROOT", str(tmp_path))
    write_pairs(tmp_path / "p.jsonl", synthetic_pairs(10))
    return tmp_path


def test_the_reward_job_takes_the_clis_epochs_seed_and_eval_pairs(job_root: Path) -> None:
    from hilt.ops.commands import build_argv

    argv = build_argv("train.reward", {"pairs": "p.jsonl", "out": "rm", "epochs": "2",
                                       "seed": 7, "eval_pairs": "p.jsonl"})
    words = argv[argv.index("reward") + 1:]
    assert words[words.index("--epochs") + 1] == "2"
    assert words[words.index("--seed") + 1] == "7"
    assert words[words.index("--eval-pairs") + 1] == str((job_root / "p.jsonl").resolve())
    split = build_argv("train.reward", {"pairs": "p.jsonl", "out": "rm", "held_out": 0.25,
                                        "split_seed": "3"})
    assert split[split.index("--held-out") + 1] == "0.25"


@pytest.mark.parametrize(("params", "reason"), [
    ({"seed": 5000000000}, "must lie in 0..2147483647"), ({"seed": "-1"}, "must lie in"),
    ({"seed": 1.5}, "must be a whole number"), ({"split_seed": 2**32}, "must lie in"),
    ({"epochs": 0}, "whole epochs"), ({"epochs": "1.5"}, "whole epochs"),
    ({"epochs": "many"}, "must be a number"), ({"held_out": 1}, "strictly between"),
    ({"held_out": "nan"}, "strictly between"),
    ({"eval_pairs": "/etc/passwd"}, "must be a path inside the job folder"),
])
def test_bad_reward_job_parameters_are_refused_as_the_cli_refuses_them(
        job_root: Path, params: dict[str, Any], reason: str) -> None:
    from hilt.ops.commands import build_argv

    with pytest.raises(InputError) as refused:
        build_argv("train.reward", {"pairs": "p.jsonl", "out": "rm", **params})
    assert refused.value.field == next(iter(params))
    assert reason in refused.value.reason


@pytest.mark.parametrize("name", ["held_out", "split_seed"])
def test_the_reward_job_refuses_split_parameters_with_eval_pairs(job_root: Path,
                                                                 name: str) -> None:
    from hilt.ops.jobs import kinds

    check = kinds()["train.reward"].check_params
    assert check is not None
    check({"pairs": "p.jsonl", "out": "rm", "eval_pairs": "p.jsonl"})  # fine alone
    with pytest.raises(InputError) as refused:
        check({"pairs": "p.jsonl", "out": "rm", "eval_pairs": "p.jsonl", name: "1"})
    assert refused.value.field == name
