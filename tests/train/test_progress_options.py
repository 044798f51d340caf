"""Progress on stderr: `hilt eval reward`, `hilt train|eval classifier` show a bar over
their encoding batches, and `--no-progress` silences every bar, transformers'
"Loading weights" included (`hilt train reward|sft` too)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.train.manifest import build_manifest, write_manifest
from hilt.train.reward import EncoderReward, RewardConfig
from tests.train.conftest import synthetic_pairs, write_pairs, write_refusal_labels

BAR = "%|"  # what every tqdm bar draws


@pytest.fixture
def no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No database anywhere: training runs from files do not register."""
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HILT_DATABASE_URL", raising=False)


def _invoke(args: list[str], monkeypatch: pytest.MonkeyPatch, cache: Path) -> tuple[str, str]:
    """Run one command with an empty embedding cache of its own, so its texts are
    encoded (a cached text needs no encoding and shows no bar)."""
    monkeypatch.setenv("HILT_CACHE_DIR", str(cache))
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.stderr
    return done.stdout, done.stderr


def _untrained_reward_model(folder: Path) -> Path:
    """A reward-model folder with the real encoder and an untrained head: what loading
    and scoring show is what matters here, not what it learnt."""
    config = RewardConfig(trainable_layers=0, lexical_expert=False)
    EncoderReward(config).save(folder)
    write_manifest(folder, build_manifest(kind="reward", base_model=config.encoder,
                                          data_path=None, data_hash="0" * 64, n_records=0,
                                          config={}, seed=0, extra={"backend": "minilm-bt"}))
    return folder


@pytest.mark.slow
def test_eval_reward_shows_encoding_progress_and_no_progress_silences_every_bar(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers.utils import logging as transformers_logging

    model = _untrained_reward_model(tmp_path / "rm")
    pairs = write_pairs(tmp_path / "pairs.jsonl", synthetic_pairs(6))
    args = ["eval", "reward", "--model", str(model), "--pairs", str(pairs), "--no-probes"]
    before = transformers_logging.is_progress_bar_enabled()
    out, err = _invoke([*args, "--no-progress"], monkeypatch, tmp_path / "c1")
    assert json.loads(out)["n"] == 6
    assert BAR not in err and "Loading weights" not in err
    # the libraries' switch is put back for the rest of the process
    assert transformers_logging.is_progress_bar_enabled() == before
    out, err = _invoke(args, monkeypatch, tmp_path / "c2")
    assert json.loads(out)["n"] == 6
    assert "encoding (frozen layers)" in err and BAR in err


@pytest.mark.slow
def test_classifier_commands_show_encoding_progress_unless_told_not_to(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_database: None) -> None:
    data = write_refusal_labels(tmp_path / "labels.jsonl")
    fields = ["--data", str(data), "--text-field", "text", "--label-field", "y"]
    _, err = _invoke(["train", "classifier", *fields, "--out", str(tmp_path / "clf")],
                     monkeypatch, tmp_path / "c1")
    assert "Batches" in err and BAR in err  # sentence-transformers' bar over batches
    _, err = _invoke(["train", "classifier", *fields, "--out", str(tmp_path / "clf2"),
                      "--no-progress"], monkeypatch, tmp_path / "c2")
    assert BAR not in err
    evaluate = ["eval", "classifier", "--model", str(tmp_path / "clf"), *fields]
    out, err = _invoke([*evaluate, "--no-progress"], monkeypatch, tmp_path / "c3")
    assert json.loads(out)["n"] == 8 and BAR not in err
    out, err = _invoke(evaluate, monkeypatch, tmp_path / "c4")
    assert json.loads(out)["n"] == 8 and "Batches" in err


@pytest.mark.slow
def test_train_reward_no_progress_leaves_stderr_free_of_bars(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_database: None) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl", synthetic_pairs(20))
    _, err = _invoke(["train", "reward", "--pairs", str(pairs), "--out", str(tmp_path / "rm"),
                      "--epochs", "1", "--trainable-layers", "0", "--max-length", "48",
                      "--no-lexical-expert", "--no-progress"], monkeypatch, tmp_path / "c")
    assert BAR not in err and "Loading weights" not in err


@pytest.mark.slow
def test_train_sft_no_progress_leaves_stderr_free_of_bars(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_database: None) -> None:
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in
                            [("Say hello.", "Hello there!"), ("Name a colour.", "Blue.")]))
    _, err = _invoke(["train", "sft", "--data", str(data), "--out", str(tmp_path / "sft"),
                      "--max-steps", "1", "--no-progress"], monkeypatch, tmp_path / "c")
    assert BAR not in err and "Loading weights" not in err
