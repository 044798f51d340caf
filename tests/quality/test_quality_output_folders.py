"""``hilt quality aggregate`` creates the folders its outputs go to."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hilt.cli import app


def test_aggregate_creates_missing_output_folders(tmp_path: Path) -> None:
    answers = tmp_path / "answers.csv"
    answers.write_text("item,reviewer,label\ni1,r1,a\ni1,r2,a\ni2,r1,b\ni2,r2,b\n")
    out = tmp_path / "new" / "dir" / "labels.csv"
    report = tmp_path / "other" / "report.json"
    result = CliRunner().invoke(app, ["quality", "aggregate", str(answers), "--method",
                                      "mv", "--out", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0] == "item,label,confidence"
    assert json.loads(report.read_text())["method"] == "mv"
