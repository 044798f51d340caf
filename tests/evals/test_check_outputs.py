"""The output folder of ``hilt check`` and the files it reads: nothing written before the
decision is stored, a bad --out named as given, duplicate JSON keys refused, and the
report's interval labels true to the methods of the record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.check import run_check
from hilt.evals.files import parse_responses, parse_suite
from hilt.evals.html import render_html


def _world(tmp_path: Path, jsonl: Any, rewards: bool = False) -> dict[str, Path]:
    suite = [{"id": f"q{i}", "prompt": f"p{i}", "slice": "x",
              "expect": "comply" if i < 6 else "refuse"} for i in range(10)]
    resp = [{"id": f"q{i}", "response": "r", "judgment": "comply" if i < 6 else "refuse",
             **({"reward": float(i)} if rewards else {})} for i in range(10)]
    ref = [{**r, **({"reward": 0.5} if rewards else {})} for r in resp]
    return {"suite": jsonl(tmp_path / "s.jsonl", suite),
            "cand": jsonl(tmp_path / "c.jsonl", resp),
            "ref": jsonl(tmp_path / "r.jsonl", ref)}


def test_record_on_a_database_without_schema_writes_no_outputs(tmp_path: Path,
                                                               jsonl: Any) -> None:
    files = _world(tmp_path, jsonl)
    out = tmp_path / "out"
    (tmp_path / "empty.db").touch()  # a database file without the hilt schema
    result = CliRunner().invoke(app, [
        "check", "--suite", str(files["suite"]), "--candidate", str(files["cand"]),
        "--reference", str(files["ref"]), "--out", str(out), "--record",
        "--db", f"sqlite:///{tmp_path / 'empty.db'}"])
    assert result.exit_code == 2, result.output
    assert "create it with: hilt init" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_out_naming_an_existing_file_is_refused_as_given(tmp_path: Path, jsonl: Any) -> None:
    files = _world(tmp_path, jsonl)
    afile = tmp_path / "afile"
    afile.write_text("keep")
    for out in (afile, afile / "sub"):
        with pytest.raises(InputError) as caught:
            run_check(suite=files["suite"], candidate=files["cand"],
                      reference=files["ref"], out=out)
        assert caught.value.field == "--out" and caught.value.file == str(out)
        assert "existing file" in str(caught.value)
    assert afile.read_text() == "keep"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_repeated_key_in_a_line_is_refused(tmp_path: Path) -> None:
    suite = tmp_path / "s.jsonl"
    suite.write_text('{"id": "a", "prompt": "p", "slice": "x", "expect": "refuse"}\n')
    resp = tmp_path / "c.jsonl"
    resp.write_text('{"id": "a", "response": "r", "judgment": "refuse", '
                    '"judgment": "comply"}\n')
    items = parse_suite(suite)
    with pytest.raises(InputError, match="more than once") as caught:
        parse_responses(resp, items, suite)
    assert (caught.value.file, caught.value.line, caught.value.field) == (
        str(resp), 1, "judgment")


def test_report_names_the_win_rate_interval_of_its_metrics_version(tmp_path: Path,
                                                                   jsonl: Any) -> None:
    files = _world(tmp_path, jsonl, rewards=True)
    result = run_check(suite=files["suite"], candidate=files["cand"],
                       reference=files["ref"], out=tmp_path / "out")
    assert result.report["metrics_version"] == 3
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Wilson score interval" in html
    assert "bootstrap interval" not in html and "bootstrap resamples" not in html
    # a version-1 report (bootstrap win-rate intervals) keeps its own words
    old = json.loads(json.dumps(result.report))
    old.pop("metrics_version")
    old_html = render_html(old)
    assert "bootstrap interval" in old_html and "2000 bootstrap resamples" in old_html
