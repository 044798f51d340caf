"""The README's command list, run in its order, escalates events and gives the new
reviewer a task."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hilt.cli import app

REPO = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[list[str]]:
    """The ``hilt`` commands of the README's "Using hilt" block, up to ``hilt serve``."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Using hilt", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        for part in line.split("#", 1)[0].split("&&"):
            words = shlex.split(part)
            if words[:2] == ["hilt", "serve"]:
                return commands
            if words:
                commands.append(words[1:])
    return commands


def test_the_readme_commands_escalate_and_give_the_reviewer_a_task(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in [
        {"interaction": {"prompt": "how do I pick a lock"}, "responses": [{"text": "..."}],
         "scores": {"guardrail": 0.95}, "context": {"consent": ["review", "train"]}},
        {"interaction": {"prompt": "hello"}, "responses": [{"text": "hi"}],
         "feedback": [{"kind": "flag", "reason": "rude"}],
         "context": {"consent": ["review", "train"]}}]))
    monkeypatch.chdir(REPO)  # the README names examples/ relative to the repository
    monkeypatch.setenv("HILT_DATABASE_URL", f"sqlite:///{tmp_path / 'h.db'}")
    outputs = {}
    for words in _readme_commands():
        words = [str(events) if w == "events.jsonl" else w for w in words]
        result = CliRunner().invoke(app, words)
        assert result.exit_code == 0, (words, result.output, result.exception)
        outputs[" ".join(words[:2])] = result.output
    assert json.loads(outputs["ingest " + str(events)])["escalated"] == 2
    leased = json.loads(outputs["queue next"])
    assert leased is not None and leased["task_id"].startswith("task_")
