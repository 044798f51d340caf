"""What training and evaluation report: records dropped, the basis of the headline
accuracy, overlap with the training data, calibration, and what was evaluated."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.train.manifest import manifest_hash, read_manifest
from hilt.train.pairs import Pair
from tests.train.conftest import (
    LengthRewardModel,
    stub_reward_training,
    synthetic_pairs,
    write_pairs,
)

ROWS = [("I'm sorry, I can't help with that.", "refuse"), ("Sure, here it is.", "comply"),
        ("I cannot assist with this request.", "refuse"), ("The answer is 42.", "comply"),
        ("No, I won't do that.", "refuse"), ("Boil it for ten minutes.", "comply"),
        ("I apologise, but that's not something I can do.", "refuse"),
        ("Paris is the capital of France.", "comply"),
        ("That is not something I will help with.", "refuse"),
        ("Here are three ideas for dinner.", "comply")]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _labels(path: Path, rows: list[tuple[str, str]]) -> Path:
    return _jsonl(path, [{"text": t, "y": y} for t, y in rows])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HILT_DATABASE_URL", raising=False)
    return tmp_path


def _invoke(args: list[str]) -> Any:
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, (done.output, done.exception)
    return done


def _train_classifier(tmp_path: Path, *extra: str) -> dict[str, Any]:
    data = _labels(tmp_path / "train.jsonl", ROWS)
    done = _invoke(["train", "classifier", "--data", str(data), "--text-field", "text",
                    "--label-field", "y", "--out", str(tmp_path / "clf"), "--no-progress",
                    *extra])
    manifest: dict[str, Any] = json.loads(done.stdout)
    return manifest


# -- records dropped -------------------------------------------------------------------

def test_trl_pairs_dropped_for_length_are_noted_on_stderr(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hilt.train.reward_refresh import refresh_reward_model
    from hilt.train.reward_trl import TRLRewardConfig

    long_reply = "and then it went on and on " * 20
    long = [Pair(prompt=p.prompt, chosen=p.chosen + long_reply, rejected=p.rejected)
            for p in synthetic_pairs(8, offset=16)]
    config = TRLRewardConfig(model="tiny", max_steps=1, batch_size=4, max_length=64)
    manifest = refresh_reward_model(synthetic_pairs(16) + long, tmp_path / "rm",
                                    config=config, progress=False)
    head = manifest["metrics"]
    assert head["train_pairs_dropped"] > 0
    assert (f"note: {head['train_pairs_dropped']} of {head['train_pairs']} training pairs "
            "are dropped: too long for --max-length 64") in capsys.readouterr().err


def test_sft_demonstrations_dropped_for_length_are_noted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hilt.train.sft import SFTRunConfig, train_sft

    short = [{"prompt": f"Hi {i}", "completion": "Hello."} for i in range(6)]
    long = [{"prompt": "word " * 80, "completion": "Fine."} for _ in range(4)]
    config = SFTRunConfig(max_steps=1, max_length=40, batch_size=2)
    facts = train_sft(short + long, config, tmp_path / "sft", progress=False)
    metrics = facts["metrics"]
    assert metrics["n_dropped"] == 4 and metrics["n_used"] == 6
    assert ("note: 4 of 10 demonstrations are dropped from training: too long for "
            "--max-length 40") in capsys.readouterr().err


# -- SFT held-out split ----------------------------------------------------------------

def test_split_records_is_seeded_and_keeps_copies_together() -> None:
    from hilt.train.sft import split_records

    records = [{"prompt": f"q{i}", "completion": "a"} for i in range(20)]
    records += [dict(records[0]) for _ in range(3)]
    train, held = split_records(records, 0.25, 0)
    assert len(train) + len(held) == len(records)
    assert (records[0] in train) != (records[0] in held)  # every copy on one side
    assert split_records(records, 0.25, 0) == (train, held)
    assert split_records(records, 0.25, 1) != (train, held)
    assert len({json.dumps(r) for r in held}) == 5  # round(0.25 × 20 distinct)


@pytest.mark.slow
def test_sft_from_a_file_is_evaluated_on_a_seeded_held_out_part(home: Path) -> None:
    from hilt.canonical import content_hash

    rows = [{"prompt": f"What is {i} plus {i}?", "completion": f"It is {2 * i}."}
            for i in range(20)]
    data = _jsonl(home / "sft.jsonl", rows)
    done = _invoke(["train", "sft", "--data", str(data), "--out", str(home / "sft"),
                    "--max-steps", "1", "--held-out", "0.25", "--no-progress"])
    manifest = json.loads(done.stdout)
    metrics = manifest["metrics"]
    assert metrics["n"] == 15 and metrics["validation_n"] == 5
    interval = metrics["validation_loss_ci"]
    assert interval["n"] == metrics["validation_n_used"] == 5
    assert interval["low"] <= metrics["validation_loss"] <= interval["high"]
    assert manifest["split"]["held_out"] == 5 and manifest["split"]["split_seed"] == 0
    # the data is the whole file; the split says which part was held out
    assert manifest["data"]["records"] == 20
    assert manifest["data"]["hash"] == content_hash(rows)
    # LoRA settings are recorded only when LoRA trained
    assert "lora_r" not in manifest["config"] and manifest["lora"] is None
    assert manifest["base_model_source"]["folder"] == "base-model"


# -- the basis of the headline accuracy ------------------------------------------------

def test_held_out_pairs_that_are_training_pairs_are_noted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from hilt.train.reward import RewardConfig
    from hilt.train.reward_refresh import refresh_reward_model

    stub_reward_training(monkeypatch)
    train = synthetic_pairs(10)
    held = train[:3] + synthetic_pairs(2, offset=40)
    manifest = refresh_reward_model(train, tmp_path / "rm", config=RewardConfig(),
                                    eval_pairs=held, progress=False)
    assert manifest["metrics"]["accuracy_basis"] == "held_out_overlapping_training"
    assert manifest["metrics"]["held_out_in_train"] == 3
    assert "note: 3 of 5 held-out pairs are also training pairs" in capsys.readouterr().err
    clean = refresh_reward_model(train, tmp_path / "rm2", config=RewardConfig(),
                                 progress=False)
    assert clean["metrics"]["accuracy_basis"] == "held_out"
    assert "held-out pairs are also" not in capsys.readouterr().err


def test_out_of_fold_accuracy_says_so(home: Path, hash_encoder: None) -> None:
    manifest = _train_classifier(home, "--no-register")
    assert manifest["metrics"]["accuracy_basis"] == "out_of_fold"


def test_out_of_fold_accuracy_after_fine_tuning_is_called_optimistic(
        tmp_path: Path, hash_encoder: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.train import classifier_finetune
    from hilt.train.classifier import ClassifierConfig
    from hilt.train.classifier_eval import LabelledTexts
    from hilt.train.classifier_refresh import refresh_classifier

    def finetuned(texts: Any, y: Any, n: int, *, out_dir: Path, **kwargs: Any) -> str:
        out_dir.mkdir(parents=True)
        (out_dir / "weights.bin").write_bytes(b"tuned")
        return str(out_dir)

    monkeypatch.setattr(classifier_finetune, "finetune_encoder", finetuned)
    rows = LabelledTexts([t for t, _ in ROWS], [y for _, y in ROWS])
    manifest = refresh_classifier(rows, tmp_path / "clf", ClassifierConfig(finetune_epochs=1),
                                  data_path="d", data_hash="h", label_field="y",
                                  fields={"text": "text"}, progress=False)
    assert manifest["metrics"]["accuracy_basis"] == "out_of_fold_optimistic"
    assert "encoder/weights.bin" in manifest["files"]


def test_the_basis_of_versions_registered_before_it_was_recorded_is_told() -> None:
    from hilt.store.tables.registry import ModelVersionRow
    from hilt.train.registry import accuracy_basis

    def row(kind: str, metrics: dict[str, Any], config: dict[str, Any] | None = None
            ) -> ModelVersionRow:
        return ModelVersionRow(kind=kind, metrics=metrics, config=config or {})

    assert accuracy_basis(row("reward", {"accuracy": 0.6, "held_out_in_train": 0})) \
        == "held_out"
    assert accuracy_basis(row("reward", {"accuracy": 1.0, "held_out_in_train": 6})) \
        == "held_out_overlapping_training"
    oof = {"accuracy": {"value": 0.9}}
    assert accuracy_basis(row("classifier", oof)) == "out_of_fold"
    assert accuracy_basis(row("classifier", oof, {"finetune_epochs": 2})) \
        == "out_of_fold_optimistic"
    assert accuracy_basis(row("classifier", {**oof, "held_out": {"n": 3}})) == "held_out"
    assert accuracy_basis(row("sft", {"train_loss": 1.0})) is None
    assert accuracy_basis(row("reward", {"accuracy": 0.6, "accuracy_basis": "held_out"})) \
        == "held_out"


# -- classifier evaluation: overlap, unknown labels, calibration, provenance --------------

def test_eval_classifier_reports_overlap_unknown_labels_and_calibration(
        home: Path, hash_encoder: None) -> None:
    _train_classifier(home, "--no-register")
    model = home / "clf"
    assert (model / "reliability.png").stat().st_size > 0
    rows = ROWS[:4] + [("A brand new refusal: I will not.", "refuse"),
                       ("A brand new answer: twelve.", "comply"),
                       ("Typo label one.", "Refusal"), ("Typo label two.", "Refusal")]
    data = _labels(home / "eval.jsonl", rows)
    png = home / "eval.png"
    done = _invoke(["eval", "classifier", "--model", str(model), "--data", str(data),
                    "--text-field", "text", "--label-field", "y", "--no-progress",
                    "--reliability", str(png)])
    report = json.loads(done.stdout)
    assert report["training_overlap"]["overlap"] == "known"
    assert report["training_overlap"]["in_train"] == 4
    assert report["training_overlap"]["unseen"]["n"] == 4
    assert "note: 4 of 8 evaluated distinct rows were in this model's training data" \
        in done.stderr
    assert report["unknown_labels"] == ["Refusal"] and report["unknown_label_rows"] == 2
    assert ("note: 2 of 8 rows have labels (field 'y') the model does not know: "
            "'Refusal' (2)") in done.stderr
    # accuracy as a rate object: the n its interval rests on is n_distinct
    acc = report["accuracy_ci"]
    assert acc["n"] == report["n_distinct"] == 8 and acc["unit"] == "distinct rows"
    assert acc["successes"] / acc["n"] == report["accuracy"]
    assert (acc["low"], acc["high"]) == (report["accuracy_ci_low"], report["accuracy_ci_high"])
    # calibration over the rows whose label the model knows: one point per class
    assert report["calibration_n"] == 6 and report["calibration_points"] == 12
    assert 0 <= report["ece"] <= 1 and 0 <= report["brier"] <= 1
    assert sum(b["n"] for b in report["reliability_bins"]) == 12
    assert png.stat().st_size > 0
    # what was evaluated
    evaluated = report["evaluated"]
    assert evaluated["model"]["path"] == str(model.resolve())
    assert evaluated["model"]["manifest_hash"] == manifest_hash(read_manifest(model))
    assert evaluated["model"]["model_version"] is None
    assert evaluated["data"] == {"path": str(data.resolve()),
                                 "sha256": hashlib.sha256(data.read_bytes()).hexdigest()}
    assert evaluated["code_version"].startswith("hilt ")
    # a model saved before its training rows were recorded: the overlap is unknown
    (model / "training_texts.json").unlink()
    again = json.loads(_invoke(["eval", "classifier", "--model", str(model), "--data",
                                str(data), "--text-field", "text", "--label-field", "y",
                                "--no-progress"]).stdout)
    assert again["training_overlap"] == {"overlap": "unknown", "in_train": None,
                                         "unseen": None}


def test_training_reports_out_of_fold_calibration(home: Path, hash_encoder: None) -> None:
    manifest = _train_classifier(home, "--no-register")
    validation = manifest["metrics"]["validation"]
    assert validation["calibration_n"] == validation["n_distinct"] == len(ROWS)
    assert validation["calibration_points"] == 2 * len(ROWS)
    assert {"ece", "ece_ci", "brier", "brier_ci", "reliability_bins"} <= set(validation)
    stored = json.loads((home / "clf" / "classifier.json").read_text())["validation"]
    assert stored["brier"] == validation["brier"]


def test_binary_calibration_is_the_reward_models_definition() -> None:
    from hilt.train.classifier_calibration import calibration_report
    from hilt.train.reward_eval import calibration

    delta = np.linspace(-3, 3, 25)
    p = 1 / (1 + np.exp(-delta))
    # a pair read as a row whose label is the chosen reply: P(chosen) = σ(Δ)
    report = calibration_report(np.column_stack([1 - p, p]), np.ones(25, dtype=int))
    ece, bins = calibration(delta)
    assert report["ece"] == pytest.approx(ece)
    assert [b["n"] for b in report["reliability_bins"]] == [b["n"] for b in bins]
    assert report["brier"] == pytest.approx(float(np.mean((p - 1) ** 2)))


def test_brier_score_of_more_classes_sums_over_classes() -> None:
    from hilt.train.classifier_calibration import calibration_report

    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    report = calibration_report(proba, np.array([0, 1]))
    expected = ((0.3**2 + 0.2**2 + 0.1**2) + (0.1**2 + 0.9**2 + 0.8**2)) / 2
    assert report["brier"] == pytest.approx(expected)
    assert report["calibration_points"] == 6
    assert report["ece_ci"]["low"] is None and "only 2 row(s)" in report["ece_ci"]["note"]


# -- eval reward: what was evaluated, overlap note ---------------------------------------

def test_eval_reward_names_the_model_version_data_and_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.train import reward_refresh
    from tests.conftest import migrated_sqlite

    url = migrated_sqlite(tmp_path / "hilt.db")
    stub_reward_training(monkeypatch)
    pairs = write_pairs(tmp_path / "pairs.jsonl", synthetic_pairs(10))
    trained = json.loads(_invoke(["train", "reward", "--pairs", str(pairs), "--out",
                                  str(tmp_path / "rm"), "--db", url, "--no-progress"]).stdout)
    monkeypatch.setattr(reward_refresh, "check_reward_folder", lambda *a, **k: "minilm-bt")
    monkeypatch.setattr(reward_refresh, "load_reward_model",
                        lambda *a, **k: LengthRewardModel())
    done = _invoke(["eval", "reward", "--model", str(tmp_path / "rm"), "--pairs", str(pairs),
                    "--no-probes", "--no-progress", "--db", url])
    report = json.loads(done.stdout)
    model = report["evaluated"]["model"]
    assert model["model_version"] == trained["model_version"]
    assert model["manifest_hash"] == manifest_hash(read_manifest(tmp_path / "rm"))
    assert report["evaluated"]["data"]["sha256"] \
        == hashlib.sha256(pairs.read_bytes()).hexdigest()
    # 8 of the 10 pairs were its training pairs (the seeded 80/20 split)
    assert report["training_overlap"]["in_train"] == 8
    assert "note: 8 of 10 evaluated pairs were in this model's training data" in done.stderr
