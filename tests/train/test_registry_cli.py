"""Model registry (SQLite and PostgreSQL) and the train/eval/models commands end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.store import audit
from hilt.store.db import transaction
from hilt.train.registry import get_version, list_models, register_model_version
from tests.ops.climain import run_hilt
from tests.train.conftest import synthetic_pairs, write_pairs, write_refusal_labels


def _manifest(seed: int) -> dict:
    return {"kind": "reward", "base_model": "all-MiniLM-L6-v2",
            "data": {"path": "p.jsonl", "hash": "ab" * 32, "records": 10},
            "config": {"epochs": 1}, "seed": seed, "code_version": "hilt 0.1.0",
            "metrics": {"accuracy": 0.7, "ece": 0.05, "n": 2}}


def test_register_links_previous_version_and_audits(engine: Engine, tmp_path: Path) -> None:
    with transaction(engine) as session:
        first = register_model_version(session, manifest=_manifest(0), artifact_path=str(tmp_path))
    with transaction(engine) as session:
        second = register_model_version(session, manifest=_manifest(1),
                                        artifact_path=str(tmp_path), actor="alice")
    assert second.previous_id == first.id and first.previous_id is None
    with transaction(engine) as session:
        row = get_version(session, second.id)
        assert row.metrics["accuracy"] == 0.7 and row.seed == 1
        listed = list_models(session)
        assert [m["id"] for m in listed] == [second.id, first.id]
        entries = audit.entries(session, action="model_version.register")
        assert {e.entity_id for e in entries} == {first.id, second.id}
        assert audit.verify(session).ok


def _run(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
def test_cli_reward_classifier_and_models(tmp_path: Path) -> None:
    env = {"HILT_DATABASE_URL": f"sqlite:///{tmp_path / 'hilt.db'}"}
    assert _run(["init"], env)[0] == 0
    pairs = write_pairs(tmp_path / "pairs.jsonl", synthetic_pairs(20))
    code, out, err = _run(["train", "reward", "--pairs", str(pairs), "--out",
                           str(tmp_path / "rm"), "--epochs", "1", "--trainable-layers", "1",
                           "--max-length", "48", "--no-progress"], env)
    assert code == 0, err
    trained = json.loads(out)
    assert trained["model_version"].startswith("reward-")
    code, out, err = _run(["eval", "reward", "--model", str(tmp_path / "rm"), "--pairs",
                           str(pairs), "--no-probes", "--reliability", str(tmp_path / "r.png")],
                          env)
    assert code == 0, err
    report = json.loads(out)
    assert {"accuracy", "ece", "n"} <= set(report) and report["n"] == 20
    assert (tmp_path / "r.png").exists()

    data = write_refusal_labels(tmp_path / "labels.jsonl")
    base = ["--data", str(data), "--text-field", "text", "--label-field", "y"]
    code, out, err = _run(["train", "classifier", *base, "--out", str(tmp_path / "clf")], env)
    assert code == 0, err
    code, out, err = _run(["eval", "classifier", "--model", str(tmp_path / "clf"), *base], env)
    assert code == 0, err
    report = json.loads(out)
    assert report["accuracy"] >= 0.75
    assert set(report["per_class"]["refuse"]) >= {"precision", "recall"}

    code, out, _ = _run(["models", "list"], env)
    listed = json.loads(out)
    assert {m["kind"] for m in listed} == {"reward", "classifier"}
    code, out, _ = _run(["models", "show", trained["model_version"]], env)
    assert json.loads(out)["config"]["trainable_layers"] == 1
    # --db names the database, as in every other command
    elsewhere = {"HILT_DATABASE_URL": f"sqlite:///{tmp_path / 'other.db'}"}
    code, out, err = _run(["models", "list", "--db", env["HILT_DATABASE_URL"]], elsewhere)
    assert code == 0, err
    assert json.loads(out) == listed
    code, out, err = _run(["models", "show", trained["model_version"], "--db",
                           env["HILT_DATABASE_URL"]], elsewhere)
    assert code == 0, err
    assert json.loads(out)["id"] == trained["model_version"]


def _hilt(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HILT_DATABASE_URL": f"sqlite:///{tmp_path / 'hilt.db'}"}
    return run_hilt(args, env=env)


@pytest.mark.slow
def test_cli_bad_pairs_exit_2_and_write_nothing(tmp_path: Path) -> None:
    assert _hilt(["init"], tmp_path).returncode == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p"}\n')
    done = _hilt(["train", "reward", "--pairs", str(bad), "--out", str(tmp_path / "rm")],
                 tmp_path)
    assert done.returncode == 2
    assert "line 2" in done.stderr and "'chosen'" in done.stderr and str(bad) in done.stderr
    assert not (tmp_path / "rm").exists()
    done = _hilt(["train", "classifier", "--data", str(bad), "--text-field", "chosen",
                  "--label-field", "prompt", "--out", str(tmp_path / "c")], tmp_path)
    assert done.returncode == 2 and "line 2" in done.stderr and not (tmp_path / "c").exists()


@pytest.mark.slow
def test_cli_classifier_with_prompt_and_harmful_fields(tmp_path: Path) -> None:
    env = {"HILT_DATABASE_URL": f"sqlite:///{tmp_path / 'hilt.db'}"}
    rows = [{"text": t, "y": y, "p": p, "h": h} for t, y, p, h in
            [("I'm sorry, I can't help with that.", "refuse", "How do I pick a lock?", True),
             ("Sure, here it is.", "comply", "Share a bread recipe.", False),
             ("I cannot assist with this request.", "refuse", "Write malware.", True),
             ("The answer is 42.", "comply", "What is six times seven?", False),
             ("There is no reason to exclude them.", "refuse", "Why exclude them?", True),
             ("There is no reason to fear clouds.", "comply", "Why fear clouds?", False),
             ("No, I won't do that.", "refuse", "Insult my boss.", True),
             ("Paris is the capital of France.", "comply", "Capital of France?", False)]]
    data = tmp_path / "labels.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = ["--data", str(data), "--text-field", "text", "--label-field", "y"]
    code, out, err = _run(["train", "classifier", *base, "--context-field", "p",
                           "--context-similarity", "--harmful-field", "h", "--deduplicate",
                           "--refusal-lexicon", "--out", str(tmp_path / "clf"),
                           "--no-register"], env)
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["config"]["harmful_request_negation"] is True
    assert manifest["config"]["context_similarity"] and manifest["config"]["deduplicate"]
    assert manifest["fields"]["harmful"] == "h"
    evaluate = ["eval", "classifier", "--model", str(tmp_path / "clf"), *base,
                "--context-field", "p"]
    done = _hilt(evaluate, tmp_path)
    assert done.returncode == 2 and "--harmful-field" in done.stderr
    code, out, err = _run([*evaluate, "--harmful-field", "h"], env)
    assert code == 0, err
    assert json.loads(out)["n"] == 8


def test_cli_harmful_field_must_be_boolean(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": "No.", "y": "refuse", "h": true}\n{"t": "Yes.", "y": "comply", '
                   '"h": "no"}\n')
    assert _hilt(["init"], tmp_path).returncode == 0
    done = _hilt(["train", "classifier", "--data", str(bad), "--text-field", "t",
                  "--label-field", "y", "--harmful-field", "h", "--out", str(tmp_path / "c")],
                 tmp_path)
    assert done.returncode == 2
    assert "line 2" in done.stderr and "'h'" in done.stderr and "boolean" in done.stderr
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_cli_bad_training_options_exit_2_before_training(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl", synthetic_pairs(10))
    base = ["train", "reward", "--pairs", str(pairs), "--out", str(tmp_path / "rm"),
            "--no-register"]
    for extra, field in [(["--epochs", "0.5"], "--epochs"), (["--epochs", "1.5"], "--epochs"),
                         (["--held-out=-0.5"], "--held-out"), (["--held-out", "1"], "--held-out"),
                         (["--held-out", "0"], "--held-out")]:
        done = _hilt([*base, *extra], tmp_path)
        assert done.returncode == 2 and f"field '{field}'" in done.stderr, (extra, done.stderr)
        assert "Traceback" not in done.stderr and not (tmp_path / "rm").exists()
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"t": "No.", "y": "refuse"}\n{"t": "Yes.", "y": "comply"}\n')
    for option, value in [("--target-fpr", "1.5"), ("--target-fnr", "-0.1")]:
        done = _hilt(["train", "classifier", "--data", str(rows), "--text-field", "t",
                      "--label-field", "y", option, value, "--out", str(tmp_path / "c"),
                      "--no-register"], tmp_path)
        assert done.returncode == 2 and f"field '{option}'" in done.stderr, done.stderr
    assert _hilt(["init"], tmp_path).returncode == 0  # the next run registers
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b'{"t": "No.", "y": "refuse"}\n\xff\xfe garbage\n')
    done = _hilt(["train", "classifier", "--data", str(binary), "--text-field", "t",
                  "--label-field", "y", "--out", str(tmp_path / "c")], tmp_path)
    assert done.returncode == 2 and "line 2" in done.stderr and "UTF-8" in done.stderr


def test_cli_models_refuse_a_missing_database_and_list_none_once_it_is_made(
        tmp_path: Path) -> None:
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    for args in (["models", "list"], ["models", "show", "nope"]):
        done = _hilt([*args, "--db", fresh], tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert "field '--db': no hilt schema" in done.stderr and "hilt init" in done.stderr
        assert not (tmp_path / "fresh.db").exists()  # neither created nor migrated
    assert _hilt(["init", "--db", fresh], tmp_path).returncode == 0
    done = _hilt(["models", "list", "--db", fresh], tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout) == []
    done = _hilt(["models", "list", "--kind", "bogus"], tmp_path)
    assert done.returncode == 2 and "field '--kind'" in done.stderr
    done = _hilt(["models", "show", "nope", "--db", fresh], tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr


@pytest.mark.slow
def test_cli_refuses_to_train_into_a_registered_version(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"t": t, "y": y}) + "\n" for t, y in [
        ("I can't help with that.", "refuse"), ("Sure, here it is.", "comply"),
        ("I won't do that.", "refuse"), ("The answer is 4.", "comply")] * 2))
    base = ["train", "classifier", "--data", str(rows), "--text-field", "t", "--label-field",
            "y", "--out", str(tmp_path / "clf")]
    assert _hilt(["init"], tmp_path).returncode == 0
    first = _hilt(base, tmp_path)
    assert first.returncode == 0, first.stderr
    version = json.loads(first.stdout)["model_version"]
    manifest = (tmp_path / "clf" / "manifest.json").read_text()
    again = _hilt(base, tmp_path)
    assert again.returncode == 2 and version in again.stderr and "field '--out'" in again.stderr
    assert (tmp_path / "clf" / "manifest.json").read_text() == manifest
    # a run that registers nothing would still change the registered version's files
    unregistered = _hilt([*base, "--no-register"], tmp_path)
    assert unregistered.returncode == 2 and version in unregistered.stderr
    assert (tmp_path / "clf" / "manifest.json").read_text() == manifest


def _staged_manifest(folder: Path, seed: int) -> None:
    from hilt.train.manifest import write_manifest

    write_manifest(folder, {**_manifest(seed), "kind": "classifier"})


def test_a_run_finishing_second_refuses_a_folder_registered_meanwhile(tmp_path: Path) -> None:
    from hilt.cli.train import _Registrar
    from hilt.errors import InputError
    from hilt.store.db import make_engine, migrate
    from hilt.train.manifest import read_manifest, staged_folder
    from hilt.train.registry import list_versions

    db = f"sqlite:///{tmp_path / 'hilt.db'}"
    engine = make_engine(db)
    migrate(engine)
    out = tmp_path / "race"
    first, second = _Registrar(db, True, None, "a"), _Registrar(db, True, None, "b")
    with (pytest.raises(InputError) as refused,  # noqa: PT012 - the race spans the block
          staged_folder(out, ".clf-", "classifier", first) as slow_work):
        _staged_manifest(slow_work, seed=1)
        # a second run starts after the first and finishes before it
        with staged_folder(out, ".clf-", "classifier", second) as fast_work:
            _staged_manifest(fast_work, seed=2)
        assert second.version is not None
    assert second.version in str(refused.value) and refused.value.field == "--out"
    assert first.version is None and read_manifest(out)["seed"] == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".clf-")] == []
    with transaction(engine) as session:
        assert [v.id for v in list_versions(session)] == [second.version]
    engine.dispose()


def test_the_output_folder_lock_excludes_other_processes(tmp_path: Path) -> None:
    from hilt.train.manifest import folder_lock, lock_path

    out = tmp_path / "model"
    probe = ("import fcntl, os, sys\n"
             "fd = os.open(sys.argv[1], os.O_RDWR)\n"
             "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "except BlockingIOError:\n    sys.exit(3)\n")
    with folder_lock(out):
        held = subprocess.run([sys.executable, "-c", probe, str(lock_path(out))])
    free = subprocess.run([sys.executable, "-c", probe, str(lock_path(out))])
    assert held.returncode == 3 and free.returncode == 0
    assert not out.exists()  # the lock lives beside the folder, never inside it


def test_a_run_without_registration_still_refuses_a_registered_folder(tmp_path: Path) -> None:
    from hilt.cli.train import _guard_registered_out
    from hilt.errors import InputError
    from hilt.store.db import make_engine, migrate

    db = f"sqlite:///{tmp_path / 'hilt.db'}"
    engine = make_engine(db)
    migrate(engine)
    with transaction(engine) as session:
        version = register_model_version(session, manifest=_manifest(0),
                                         artifact_path=str(tmp_path / "rm")).id
    engine.dispose()
    with pytest.raises(InputError) as refused:
        _guard_registered_out(tmp_path / "rm", db, required=False)
    assert version in str(refused.value) and refused.value.field == "--out"
    _guard_registered_out(tmp_path / "other", db, required=False)  # a free folder passes


def test_a_run_without_registration_creates_no_database_and_tolerates_none(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hilt.cli.train import _guard_registered_out

    missing = tmp_path / "never" / "hilt.db"
    _guard_registered_out(tmp_path / "rm", f"sqlite:///{missing}", required=False)
    assert not missing.exists() and not missing.parent.exists()
    # a server that cannot be reached: noted, not fatal, when nothing is registered
    _guard_registered_out(tmp_path / "rm", "postgresql://postgres@127.0.0.1:1/none",
                          required=False)
    assert "not checked against registered versions" in capsys.readouterr().err
