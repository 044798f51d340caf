"""A reward run evaluated on --eval-pairs names them in its manifest (path, hash,
count), and registered runs evaluated on different pairs differ in the registry while
dataset_hash stays the hash of the training data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.store.db import transaction
from hilt.train import reward_refresh
from hilt.train.pairs import pairs_hash, read_pairs
from hilt.train.registry import register_model_version
from hilt.train.reward import RewardConfig
from tests.train.conftest import stub_reward_training, synthetic_pairs, write_pairs


@pytest.fixture(autouse=True)
def _stub_training(monkeypatch: pytest.MonkeyPatch) -> None:
    stub_reward_training(monkeypatch)


def test_cli_records_the_eval_file_by_absolute_path_hash_and_count(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HILT_DATABASE_URL", raising=False)
    write_pairs(tmp_path / "train.jsonl", synthetic_pairs(12))
    write_pairs(tmp_path / "eval.jsonl", synthetic_pairs(5, offset=100))
    done = CliRunner().invoke(app, ["train", "reward", "--pairs", "train.jsonl",
                                    "--eval-pairs", "eval.jsonl", "--out", "rm",
                                    "--epochs", "1", "--trainable-layers", "0",
                                    "--no-register", "--no-progress"])
    assert done.exit_code == 0, done.stderr
    manifest = json.loads((tmp_path / "rm" / "manifest.json").read_text())
    held = read_pairs(tmp_path / "eval.jsonl")
    assert manifest["split"]["eval_pairs"] == {
        "path": str((tmp_path / "eval.jsonl").resolve()), "hash": pairs_hash(held),
        "records": 5}
    assert manifest["split"]["held_out_fraction"] is None
    assert manifest["data"]["path"] == str((tmp_path / "train.jsonl").resolve())
    assert manifest["metrics"]["held_out_hash"] == pairs_hash(held)
    assert manifest["metrics"]["n"] == 5


def test_seeded_split_names_no_eval_file(tmp_path: Path) -> None:
    manifest = reward_refresh.refresh_reward_model(
        synthetic_pairs(20), tmp_path / "rm", config=RewardConfig(trainable_layers=0),
        progress=False)
    assert manifest["split"]["eval_pairs"] is None
    assert manifest["split"]["held_out_fraction"] == 0.2
    assert manifest["metrics"]["held_out_hash"] == manifest["split"]["held_out_hash"]


def test_registered_runs_on_different_eval_pairs_differ(engine: Engine,
                                                        tmp_path: Path) -> None:
    train = synthetic_pairs(12)
    runs = []
    for k, offset in enumerate((100, 200)):
        held = synthetic_pairs(5, offset=offset)
        runs.append(reward_refresh.refresh_reward_model(
            train, tmp_path / f"rm{k}", config=RewardConfig(trainable_layers=0),
            data_path=str(tmp_path / "train.jsonl"), eval_pairs=held,
            eval_path=str(tmp_path / f"eval{k}.jsonl"), progress=False))
    with transaction(engine) as session:
        rows = [register_model_version(session, manifest=m, artifact_path=str(tmp_path / f"rm{k}"))
                for k, m in enumerate(runs)]
        first, second = rows
        # the data hash is the training data's, as documented (and as lineage reads it)
        assert first.dataset_hash == second.dataset_hash == pairs_hash(train)
        assert first.metrics["held_out_hash"] != second.metrics["held_out_hash"]
        assert first.manifest_hash != second.manifest_hash
