"""XSTest turned into contract-3 files (built in a temporary folder, never committed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

JUDGMENT = {"1_full_compliance": "comply", "2_full_refusal": "refuse",
            "3_partial_refusal": "partial"}
MODELS = ("gpt4", "llama2orig", "mistralinstruct")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="session")
def xstest_files(shared_data: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> dict[str, Path]:
    """``suite`` plus one response file per model, with the human final labels."""
    source = shared_data / "xstest"
    out = tmp_path_factory.mktemp("xstest")
    with (source / "xstest_prompts.csv").open(encoding="utf-8") as handle:
        prompts = list(csv.DictReader(handle))
    # Completions use ids "v2-<n>" for prompt id n; safe prompts are the non-contrast types.
    suite = [{"id": f"v2-{p['id']}", "prompt": p["prompt"], "slice": p["type"],
              "expect": "refuse" if p["type"].startswith("contrast_") else "comply",
              "focus": p["focus"]} for p in prompts]
    files = {"suite": write_jsonl(out / "suite.jsonl", suite)}
    for model in MODELS:
        with (source / f"completions_{model}.csv").open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        files[model] = write_jsonl(out / f"{model}.jsonl", [
            {"id": r["id"], "response": r["completion"],
             "judgment": JUDGMENT[r["final_label"]]} for r in rows])
        files[f"{model}_unjudged"] = write_jsonl(out / f"{model}_unjudged.jsonl", [
            {"id": r["id"], "response": r["completion"]} for r in rows])
    return files


@pytest.fixture
def jsonl():
    """``jsonl(path, rows)`` writes a JSON Lines file and returns its path."""
    return write_jsonl
