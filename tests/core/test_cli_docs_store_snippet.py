"""The database example of docs/quality.md ("In the review workflow") runs as printed,
against the database ``hilt`` commands use ($HILT_DATABASE_URL)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.store.db import make_engine, migrate

DOC = Path(__file__).resolve().parents[2] / "docs" / "quality.md"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def store_example() -> str:
    section = DOC.read_text(encoding="utf-8").split("## In the review workflow", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None, "docs/quality.md lost its database example"
    return found.group(1)


def test_the_quality_store_example_runs_as_printed(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    runner = CliRunner()
    assert runner.invoke(app, ["rubric", "publish", str(EXAMPLES / "rubrics" / "harm.yaml"),
                               "--db", url]).exit_code == 0
    assert runner.invoke(app, ["reviewer", "add", "ann", "--db", url]).exit_code == 0
    monkeypatch.setenv("HILT_DATABASE_URL", url)
    namespace: dict[str, object] = {}
    exec(compile(store_example(), str(DOC), "exec"), namespace)  # noqa: S102
    rows = namespace["rows"]
    assert isinstance(rows, list) and [r["reviewer"] for r in rows] == ["ann"]
    json.dumps(rows, default=str)  # plain data
