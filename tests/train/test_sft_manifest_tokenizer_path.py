"""The SFT manifest names the tiny model's tokenizer by its place in the model folder,
not by the staging folder the run was built in: two identical runs get one manifest
hash, and the recorded tokenizer is the one in the model folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hilt.canonical import sha256_hex
from hilt.cli import app
from hilt.train.manifest import manifest_hash

ROWS = [{"prompt": "What is two plus two?", "completion": "Four."},
        {"prompt": "Name a colour.", "completion": "Blue is a colour."},
        {"prompt": "Say hello.", "completion": "Hello there!"}]


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.slow
def test_two_identical_tiny_runs_have_one_manifest_hash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HILT_DATABASE_URL", raising=False)
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    manifests = []
    for out in ("sft1", "sft2"):
        done = CliRunner().invoke(app, ["train", "sft", "--data", str(data), "--out",
                                        str(tmp_path / out), "--max-steps", "1",
                                        "--no-register", "--no-progress"])
        assert done.exit_code == 0, done.stderr
        manifests.append(json.loads((tmp_path / out / "manifest.json").read_text()))
    first, second = manifests
    assert not [s for s in _strings(first) if ".sft-" in s]
    assert first["tokenizer"]["name_or_path"] == "base-model"
    # the recorded tokenizer is the one the model folder holds
    held = (tmp_path / "sft1" / "base-model" / "tokenizer.json").read_bytes()
    assert first["tokenizer"]["tokenizer_json_sha256"] == sha256_hex(held)
    assert manifest_hash(first) == manifest_hash(second)
    strip = ("wall_seconds",)
    assert {k: v for k, v in first.items() if k not in strip} \
        == {k: v for k, v in second.items() if k not in strip}
