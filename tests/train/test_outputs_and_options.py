"""Training outputs: the --out folder rules, option checks before any work, strict JSON."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.train.manifest import check_out_folder, dump_json, json_safe, staged_folder
from hilt.train.pairs import Pair
from hilt.train.reward import RewardConfig
from hilt.train.reward_eval import accuracy_block, evaluate_reward_model
from hilt.train.reward_refresh import load_reward_model, refresh_reward_model
from hilt.train.stats import bootstrap_interval, expected_calibration_error, reliability_bins
from tests.ops.climain import run_hilt
from tests.train.conftest import synthetic_pairs, write_pairs


def _hilt(args: list[str], tmp_path: Path, cwd: Path | None = None
          ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HILT_DATABASE_URL": f"sqlite:///{tmp_path / 'hilt.db'}"}
    return run_hilt(args, env=env, cwd=cwd)


def _strict_json(text: str) -> Any:
    """Parse as JSON proper: NaN and Infinity are not JSON."""
    def refuse(token: str) -> Any:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def _model_folder(path: Path, kind: str, files: tuple[str, ...] = ()) -> Path:
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"kind": kind}))
    for name in files:
        (path / name).write_text("{}")
    return path


def _user_folder(path: Path) -> Path:
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_text("precious")
    (path / "sub" / "data.csv").write_text("x")
    return path


def _snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): p.read_text() for p in path.rglob("*") if p.is_file()}


# -- --out ------------------------------------------------------------------------------

def test_out_folder_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    check_out_folder(work / "new", "reward")
    (work / "empty").mkdir()
    check_out_folder(work / "empty", "reward")
    check_out_folder(_model_folder(work / "rm", "reward"), "reward")
    refused = {
        "user folder": _user_folder(work / "mine"),
        "other kind": _model_folder(work / "clf", "classifier"),
        "file": work / "file.txt",
        "current folder": Path("."),
        "current folder, absolute": work,
        "parent": Path(".."),
        "root": Path("/"),
        "link": work / "link",
    }
    (work / "file.txt").write_text("x")
    (work / "link").symlink_to(work / "rm")
    (work / "bad-manifest").mkdir()
    (work / "bad-manifest" / "manifest.json").write_text("[not json")
    refused["unreadable manifest"] = work / "bad-manifest"
    for what, path in refused.items():
        with pytest.raises(InputError) as err:
            check_out_folder(path, "reward")
        assert err.value.field == "--out", what
    assert _snapshot(work / "mine") == {"notes.txt": "precious", "sub/data.csv": "x"}


def test_staged_folder_leaves_a_foreign_folder_alone(tmp_path: Path) -> None:
    mine = _user_folder(tmp_path / "mine")
    with pytest.raises(InputError), staged_folder(mine, ".x-", "classifier") as work:
        (work / "model.bin").write_text("new")
    assert _snapshot(mine) == {"notes.txt": "precious", "sub/data.csv": "x"}
    old = _model_folder(tmp_path / "clf", "classifier", ("old.bin",))
    with staged_folder(old, ".x-", "classifier") as work:
        (work / "manifest.json").write_text(json.dumps({"kind": "classifier"}))
    assert sorted(p.name for p in old.iterdir()) == ["manifest.json"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".x-")] == []


@pytest.mark.slow
def test_cli_refuses_a_foreign_out_folder_and_the_current_folder(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"t": "No.", "y": "refuse"}\n{"t": "Yes.", "y": "comply"}\n')
    mine = _user_folder(tmp_path / "mine")
    base = ["train", "classifier", "--data", str(rows), "--text-field", "t",
            "--label-field", "y", "--no-register"]
    done = _hilt([*base, "--out", str(mine)], tmp_path)
    assert done.returncode == 2 and "field '--out'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert _snapshot(mine) == {"notes.txt": "precious", "sub/data.csv": "x"}
    for out in (".", ".."):
        done = _hilt([*base, "--out", out], tmp_path, cwd=mine)
        assert done.returncode == 2 and "field '--out'" in done.stderr, done.stderr
        assert "current folder" in done.stderr
    assert _snapshot(mine) == {"notes.txt": "precious", "sub/data.csv": "x"}
    assert rows.exists()
    pairs = write_pairs(tmp_path / "pairs.jsonl", synthetic_pairs(10))
    clf = _model_folder(tmp_path / "clf", "classifier")
    done = _hilt(["train", "reward", "--pairs", str(pairs), "--out", str(clf),
                  "--no-register"], tmp_path)
    assert done.returncode == 2 and "holds a classifier model" in done.stderr, done.stderr
    done = _hilt(["train", "sft", "--data", str(rows), "--out", str(mine), "--no-register"],
                 tmp_path)
    assert done.returncode == 2 and "field '--out'" in done.stderr, done.stderr
    assert _snapshot(mine) == {"notes.txt": "precious", "sub/data.csv": "x"}


@pytest.mark.slow
def test_sft_refuses_the_folder_of_a_registered_version(tmp_path: Path) -> None:
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in [
        ("What is two plus two?", "Four."), ("Name a colour.", "Blue."),
        ("Say hello.", "Hello there!"), ("Is water wet?", "Yes.")]))
    base = ["train", "sft", "--data", str(data), "--out", str(tmp_path / "sft"),
            "--max-steps", "1", "--batch-size", "2"]
    assert _hilt(["init"], tmp_path).returncode == 0
    first = _hilt(base, tmp_path)
    assert first.returncode == 0, first.stderr
    version = json.loads(first.stdout)["model_version"]
    before = (tmp_path / "sft" / "manifest.json").read_text()
    again = _hilt([*base, "--seed", "7"], tmp_path)
    assert again.returncode == 2, again.stderr
    assert version in again.stderr and "field '--out'" in again.stderr
    assert (tmp_path / "sft" / "manifest.json").read_text() == before


# -- options checked before any work ----------------------------------------------------

def test_cli_reward_options_are_checked_before_training(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl", synthetic_pairs(10))
    clf = _model_folder(tmp_path / "clf", "classifier", ("classifier.json",))
    base = ["train", "reward", "--pairs", str(pairs), "--out", str(tmp_path / "rm"),
            "--no-register"]
    for extra, field in [(["--trainable-layers", "9"], "--trainable-layers"),
                         (["--trainable-layers=-1"], "--trainable-layers"),
                         (["--view", "bogus"], "--view"),
                         (["--max-length", "0"], "--max-length"),
                         (["--max-length", "2"], "--max-length"),
                         (["--max-length", "513"], "--max-length"),
                         (["--previous", str(tmp_path / "nope")], "--previous"),
                         (["--previous", str(clf)], "--previous")]:
        result = CliRunner().invoke(app, [*base, *extra])
        assert isinstance(result.exception, InputError), (extra, result.exception)
        assert result.exception.field == field, extra
        assert not (tmp_path / "rm").exists()
    # what a user sees: one line and exit 2
    done = _hilt([*base, "--trainable-layers", "9"], tmp_path)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: field '--trainable-layers': must lie in 0..6 (the encoder's layers), got 9"]


@pytest.mark.slow
def test_cli_eval_reward_arguments_are_checked_first(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl", synthetic_pairs(4))
    clf = _model_folder(tmp_path / "clf", "classifier", ("classifier.json",))
    rm = _model_folder(tmp_path / "rm", "reward", ("reward_config.json", "reward_head.pt"))
    broken = _model_folder(tmp_path / "broken", "reward")
    no_weights = _model_folder(tmp_path / "no_weights", "reward", ("reward_config.json",))
    cases = [
        (["--model", str(clf)], "--model", "kind 'classifier'"),
        (["--model", str(broken)], "--model", "reward_config.json missing"),
        (["--model", str(no_weights)], "--model", "reward_head.pt missing"),
        (["--model", str(tmp_path)], "--model", "manifest.json missing"),
        (["--model", str(rm), "--previous", str(tmp_path / "nope")], "--previous", "not a folder"),
        (["--model", str(rm), "--previous", str(clf)], "--previous", "kind 'classifier'"),
        (["--model", str(rm), "--reliability", str(tmp_path / "no" / "x.png")],
         "--reliability", "does not exist"),
        (["--model", str(rm), "--reliability", str(tmp_path)], "--reliability", "is a folder"),
    ]
    for extra, field, reason in cases:
        done = _hilt(["eval", "reward", "--pairs", str(pairs), "--no-probes", *extra],
                     tmp_path)
        assert done.returncode == 2, (extra, done.stderr)
        assert f"field '{field}'" in done.stderr and reason in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_load_reward_model_refuses_other_kinds(tmp_path: Path) -> None:
    clf = _model_folder(tmp_path / "clf", "classifier", ("classifier.json",))
    with pytest.raises(InputError, match="kind 'classifier'"):
        load_reward_model(clf)


def test_bad_previous_is_refused_before_training(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import hilt.train.reward_refresh as refresh

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained before the arguments were checked")

    monkeypatch.setattr(refresh, "train_reward_model", no_training)
    for previous in (tmp_path / "nope", _model_folder(tmp_path / "clf", "classifier")):
        with pytest.raises(InputError) as err:
            refresh_reward_model(synthetic_pairs(10), tmp_path / "rm", config=RewardConfig(),
                                 previous_dir=previous, progress=False)
        assert err.value.field == "--previous"
    with pytest.raises(InputError) as err:
        refresh_reward_model(synthetic_pairs(10), tmp_path / "rm",
                             config=RewardConfig(trainable_layers=7), progress=False)
    assert err.value.field == "--trainable-layers"
    assert not (tmp_path / "rm").exists()


# -- strict JSON ------------------------------------------------------------------------

def test_undefined_statistics_are_none() -> None:
    assert bootstrap_interval([]) == (None, None)
    assert expected_calibration_error([], []) is None
    bins = reliability_bins([0.05, 0.95], [0, 1])
    empty = [b for b in bins if b["n"] == 0]
    assert len(empty) == 8 and all(b["confidence"] is None and b["observed"] is None
                                   for b in empty)
    block = accuracy_block(np.array([]))
    assert block["value"] is None and block["bootstrap_ci_low"] is None
    assert json_safe({"a": [float("nan"), np.float64("inf"), np.array([1.0, np.nan])],
                      "b": (1, 2.5)}) == {"a": [None, None, [1.0, None]], "b": [1, 2.5]}
    assert dump_json({"x": float("nan")}, indent=None) == '{"x": null}'


class _LengthScorer:
    """Rewards the longer reply: a stand-in model for the evaluation report."""

    def score(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        return np.array([len(r) / 10.0 for r in responses])


def test_reward_report_is_strict_json_with_nulls() -> None:
    # every chosen reply is the longer one: the chosen-shorter probe has no pairs
    pairs = [Pair(prompt=f"\n\nHuman: q{i}\n\nAssistant:",
                  chosen="I would rather not help with that, sorry." + " really" * i,
                  rejected="Sure.") for i in range(6)]
    report = evaluate_reward_model(_LengthScorer(), pairs)
    parsed = _strict_json(dump_json(report))
    assert any(b["n"] == 0 and b["confidence"] is None for b in parsed["reliability_bins"])
    empty = parsed["bias_probes"]["accuracy_chosen_shorter"]
    assert empty["n"] == 0 and empty["value"] is None and empty["bootstrap_ci_low"] is None


@pytest.mark.slow
def test_reward_outputs_are_strict_json_and_report_duplicates(tmp_path: Path) -> None:
    train = synthetic_pairs(16)
    pairs = [*train, *train[:4]]  # four exact copies
    held = [*synthetic_pairs(6, offset=50), *train[:3]]  # three held-out pairs seen in training
    config = RewardConfig(trainable_layers=0, epochs=1, max_length=32, batch_size=8,
                          frozen_expert=False, lexical_expert=False)
    out = tmp_path / "rm"
    manifest = refresh_reward_model(pairs, out, config=config, eval_pairs=held, progress=False)
    metrics = _strict_json((out / "metrics.json").read_text())
    assert metrics["duplicate_pairs"] == 4 and metrics["held_out_in_train"] == 3
    assert manifest["metrics"]["duplicate_pairs"] == 4
    assert manifest["metrics"]["held_out_in_train"] == 3
    assert any(b["confidence"] is None for b in metrics["reliability_bins"])
    _strict_json((out / "manifest.json").read_text())
    # the seeded split keeps the copies together
    split = refresh_reward_model(pairs, tmp_path / "rm2", config=config, progress=False)
    assert split["metrics"]["held_out_in_train"] == 0

    result = CliRunner().invoke(app, ["eval", "reward", "--model", str(out), "--pairs",
                                      str(write_pairs(tmp_path / "p.jsonl", held)),
                                      "--previous", str(tmp_path / "rm2"),
                                      "--reliability", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    report = _strict_json(result.stdout)
    assert report["n"] == 9 and not math.isnan(report["accuracy"])
    assert report["agreement_with_previous"] is not None
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    # rm2 trained on pairs given in memory: which it trained on cannot be recovered
    assert report["agreement_with_previous"]["previous_overlap"] == "unknown"


@pytest.mark.slow
def test_eval_reward_compares_the_previous_model_on_pairs_it_did_not_train_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.train import reward_refresh
    from hilt.train.pairs import pair_key

    config = RewardConfig(trainable_layers=0, epochs=1, max_length=32, batch_size=8,
                          frozen_expert=False, lexical_expert=False)
    out = tmp_path / "rm"
    refresh_reward_model(synthetic_pairs(12), out, config=config, progress=False)
    held = synthetic_pairs(6, offset=50)
    asked: list[Path] = []

    def known(folder: Path) -> set[tuple[str, str, str]]:
        asked.append(Path(folder))
        return {pair_key(held[0]), pair_key(held[1])}

    monkeypatch.setattr(reward_refresh, "previous_training_keys", known)
    result = CliRunner().invoke(app, ["eval", "reward", "--model", str(out), "--pairs",
                                      str(write_pairs(tmp_path / "p.jsonl", held)),
                                      "--previous", str(out), "--no-probes"])
    assert result.exit_code == 0, result.output
    agreement = _strict_json(result.stdout)["agreement_with_previous"]
    assert asked == [out, out]  # --previous's training pairs, then --model's own
    assert (agreement["previous_overlap"], agreement["previous_held_out_in_train"],
            agreement["n"]) == ("known", 2, 4)
