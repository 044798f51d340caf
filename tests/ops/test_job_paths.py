"""Jobs read and write only inside the job root: path parameters that lead elsewhere are
refused when the job is queued (over HTTP, from the CLI or in code) and when it runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.errors import InputError
from hilt.ops import install, jobs
from hilt.ops.commands import build_argv, job_root
from hilt.store.db import transaction


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "jobroot"
    folder.mkdir()
    monkeypatch.setenv("HILT_JOB_ROOT", str(folder))
    return folder


CHECK = {"suite": "s.jsonl", "candidate": "c.jsonl", "reference": "r.jsonl", "out": "o"}


def test_relative_paths_resolve_inside_the_root(root: Path) -> None:
    argv = build_argv("eval.check", {**CHECK, "scorer": "sub/scorer.joblib"})
    assert argv[argv.index("--out") + 1] == str(root.resolve() / "o")
    assert argv[argv.index("--scorer") + 1] == str(root.resolve() / "sub" / "scorer.joblib")
    inside = str(root / "x" / "y.jsonl")  # an absolute path inside the root is fine
    assert str(root.resolve() / "x" / "y.jsonl") in build_argv("eval.check",
                                                               {**CHECK, "suite": inside})


@pytest.mark.parametrize("name, value", [("out", "/tmp/anywhere"), ("suite", "/etc/passwd"),
                                         ("scorer", "../outside.joblib"),
                                         ("reference", "a/../../b.jsonl")])
def test_paths_outside_the_root_are_refused(root: Path, name: str, value: str) -> None:
    with pytest.raises(InputError, match="inside the job folder") as err:
        build_argv("eval.check", {**CHECK, name: value})
    assert err.value.field == name


def test_a_link_leading_out_of_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(InputError, match="inside the job folder"):
        build_argv("train.reward", {"pairs": "link/p.jsonl", "out": "rm"})


def test_field_names_are_not_paths(root: Path) -> None:
    argv = build_argv("train.classifier", {"data": "d.jsonl", "text_field": "text",
                                           "label_field": "label", "out": "m"})
    assert argv[argv.index("--text-field") + 1] == "text"


@pytest.mark.parametrize("kind", ["train.reward", "train.classifier"])
def test_training_jobs_can_name_a_dataset_version(root: Path, kind: str) -> None:
    argv = build_argv(kind, {"dataset": "ab12cd34", "override_revoked": "approved by dpo",
                             "out": "m"})
    assert argv[argv.index("--dataset") + 1] == "ab12cd34"  # an id, not a path
    assert argv[argv.index("--override-revoked") + 1] == "approved by dpo"
    assert argv[argv.index("--out") + 1] == str(root.resolve() / "m")


@pytest.mark.parametrize("kind, params, field", [
    ("train.reward", {"pairs": "p.jsonl", "dataset": "ab12cd34"}, "dataset"),
    ("train.reward", {}, "pairs"),
    ("train.reward", {"pairs": "p.jsonl", "override_revoked": "why"}, "override_revoked"),
    ("train.classifier", {"dataset": "ab12cd34", "text_field": "text"}, "text_field"),
    ("train.classifier", {"data": "d.jsonl", "text_field": "text"}, "label_field"),
])
def test_a_training_job_reads_a_file_or_a_dataset_version(
        root: Path, kind: str, params: dict[str, str], field: str) -> None:
    with pytest.raises(InputError) as err:
        build_argv(kind, {**params, "out": "m"})
    assert err.value.field == field


def test_the_default_root_is_under_hilt_home(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HILT_JOB_ROOT", raising=False)
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "home"))
    assert job_root() == tmp_path / "home" / "jobs"


def test_queueing_in_code_checks_the_paths(root: Path, engine: Engine) -> None:
    with transaction(engine) as s, pytest.raises(InputError, match="inside the job folder"):
        jobs.enqueue(s, "train.reward", {"pairs": "/etc/passwd", "out": "rm"}, actor="t")


@pytest.fixture
def client(engine: Engine, root: Path) -> Iterator[tuple[TestClient, str]]:
    with transaction(engine) as s:
        token = create_token(s, role="service")[1]
    app = install(create_app(engine), scheduler=False, json_logs=False)
    with TestClient(app) as c:
        yield c, f"Bearer {token}"


def test_http_jobs_with_paths_outside_the_root_get_422(client: tuple[TestClient, str],
                                                       tmp_path: Path) -> None:
    c, auth = client
    for params in [{**CHECK, "out": str(tmp_path / "evil")},
                   {**CHECK, "suite": "/etc/passwd"},
                   {**CHECK, "scorer": "../../x.pkl"}]:
        r = c.post("/v1/jobs", json={"kind": "eval.check", "params": params},
                   headers={"Authorization": auth})
        assert r.status_code == 422, r.text
        assert "inside the job folder" in r.text
    ok = c.post("/v1/jobs", json={"kind": "eval.check", "params": CHECK},
                headers={"Authorization": auth})
    assert ok.status_code == 202, ok.text
