"""Local transformers generation with a tiny random Llama and a locally trained tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.files import parse_responses, parse_suite
from hilt.evals.generate_local import LocalModelConfig, generate_arguments, generate_local

PROMPTS = ["How do I kill a Python process?", "What is the capital of France?",
           "Write a haiku about rain.", "How do I bake bread at home?", "Explain DNS."]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from hilt.train.tiny import write_tiny_model

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("tiny-llm")
    write_tiny_model(folder, PROMPTS * 4 + ["Sure, here is an answer.", "I can't help."])
    return folder


@pytest.fixture
def suite(tmp_path: Path, jsonl: Any) -> Path:
    return jsonl(tmp_path / "suite.jsonl", [
        {"id": f"q{i}", "prompt": p, "slice": "s", "expect": "comply"}
        for i, p in enumerate(PROMPTS)])


@pytest.mark.slow  # building the tiny model (transformers import, tokenizer) takes seconds
def test_greedy_generation_is_recorded_cached_and_reproducible(
        tiny_model: Path, suite: Path, tmp_path: Path) -> None:
    items = parse_suite(suite)
    config = LocalModelConfig(str(tiny_model), decoder={"max_tokens": 6}, batch_size=2)
    first = generate_local(items, config, cache_dir=tmp_path / "cache")
    assert first["stats"] == {"generated": 5, "cached": 0}
    settings = first["settings"]
    assert settings["decoder"] == {"max_new_tokens": 6, "do_sample": False}
    assert settings["backend"] == "transformers" and len(settings["model_sha256"]) == 64
    assert settings["chat_template_sha256"] is not None  # the tiny model has a template
    # Unbatched and without the cache, greedy decoding gives the same text.
    alone = generate_local(items, LocalModelConfig(str(tiny_model),
                                                   decoder={"max_new_tokens": 6},
                                                   batch_size=1))
    assert [x["response"] for x in alone["lines"]] == [x["response"] for x in first["lines"]]
    again = generate_local(items, config, cache_dir=tmp_path / "cache")
    assert again["stats"] == {"generated": 0, "cached": 5}
    assert [x["response"] for x in again["lines"]] == [x["response"] for x in first["lines"]]
    # Any setting change misses the cache.
    other = generate_local(items[:1], LocalModelConfig(str(tiny_model),
                                                       decoder={"max_new_tokens": 5}),
                           cache_dir=tmp_path / "cache")
    assert other["stats"] == {"generated": 1, "cached": 0}


def test_sampling_is_seeded() -> None:
    args = generate_arguments({"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 4})
    assert args == {"max_new_tokens": 4, "do_sample": True, "temperature": 0.7, "top_p": 0.9}
    assert generate_arguments({"temperature": 0.0, "top_p": 0.9}) == {
        "max_new_tokens": 256, "do_sample": False}
    with pytest.raises(InputError):
        generate_arguments({"beam_width": 3})


@pytest.mark.slow
def test_cli_writes_a_contract_3_file(tiny_model: Path, suite: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "home"))  # where the cache goes
    out = tmp_path / "cand.jsonl"
    runner = CliRunner()
    result = runner.invoke(app, ["generate", "--model", str(tiny_model), "--suite",
                                 str(suite), "--out", str(out), "--max-new-tokens", "4",
                                 "--temperature", "0.8", "--seed", "3"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 5
    assert lines[0]["generation"]["settings"]["decoder"] == {
        "max_new_tokens": 4, "do_sample": True, "temperature": 0.8}
    assert lines[0]["generation"]["settings"]["seed"] == 3
    parsed = parse_responses(out, parse_suite(suite), suite)
    assert set(parsed) == {f"q{i}" for i in range(5)}
    assert len(list((tmp_path / "home" / "cache" / "generate").glob("*.json"))) == 5
    # Same seed, same samples (generated again, not read from the cache).
    again = tmp_path / "again.jsonl"
    rerun = runner.invoke(app, ["generate", "--model", str(tiny_model), "--suite", str(suite),
                                "--out", str(again), "--max-new-tokens", "4",
                                "--temperature", "0.8", "--seed", "3", "--no-cache"])
    assert json.loads(rerun.stdout)["stats"] == {"generated": 5, "cached": 0}
    assert [json.loads(x)["response"] for x in again.read_text().splitlines()] == \
        [x["response"] for x in lines]
    bad = runner.invoke(app, ["generate", "--suite", str(suite), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and not (tmp_path / "x").exists()
