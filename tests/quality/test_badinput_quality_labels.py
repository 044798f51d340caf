"""Numeric labels beyond ±1e15 and answer files with no rows are refused with the file,
line and field (exit 2, nothing written); interval alpha does not depend on the unit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import HiltError
from hilt.quality.krippendorff import krippendorff_alpha


def hilt(*args: str) -> tuple[int, str]:
    """Exit code and output, with hilt's errors printed and mapped to exit 2 as
    ``hilt.cli.main`` does."""
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert isinstance(result.exception, HiltError), result.exception
        return result.exception.exit_code, f"error: {result.exception}"
    return result.exit_code, result.output


def _huge_answers(path: Path) -> Path:
    # Three reviewers on ten items; the first answer (line 2) is already out of range.
    rows = "".join(f"i{i},a,1e308\ni{i},b,1e308\ni{i},c,-1e308\n" for i in range(10))
    path.write_text("item,reviewer,label\n" + rows)
    return path


def test_badinput_quality_interval_agreement_refuses_a_label_beyond_the_range(
        tmp_path: Path) -> None:
    answers = _huge_answers(tmp_path / "big.csv")
    code, output = hilt("quality", "agreement", str(answers), "--metric",
                        "krippendorff", "--level", "interval")
    assert code == 2, output
    assert f"{answers}, line 2, field 'label'" in output
    assert "out of range" in output and "1e15" in output


@pytest.mark.parametrize("method", ["median", "mean"])
def test_badinput_quality_scale_aggregation_refuses_a_label_beyond_the_range(
        tmp_path: Path, method: str) -> None:
    answers = _huge_answers(tmp_path / "big.csv")
    out = tmp_path / "labels.csv"
    code, output = hilt("quality", "aggregate", str(answers), "--method", method,
                        "--out", str(out))
    assert code == 2, output
    assert f"{answers}, line 2, field 'label'" in output
    assert not out.exists()  # no inf or nan labels written


def test_badinput_quality_scale_aggregation_refuses_a_gold_label_beyond_the_range(
        tmp_path: Path) -> None:
    answers = tmp_path / "answers.csv"
    answers.write_text("item,reviewer,label\ni1,a,1\ni1,b,2\ni2,a,3\ni2,b,3\n")
    gold = tmp_path / "gold.csv"
    gold.write_text("item,label\ni2,3\ni1,-2e15\n")
    out = tmp_path / "labels.csv"
    code, output = hilt("quality", "aggregate", str(answers), "--method", "median",
                        "--gold", str(gold), "--out", str(out))
    assert code == 2, output
    assert f"{gold}, line 3, field 'label'" in output and "out of range" in output
    assert not out.exists()


def test_badinput_quality_labels_at_the_range_limit_still_aggregate(tmp_path: Path) -> None:
    answers = tmp_path / "answers.csv"
    answers.write_text("item,reviewer,label\ni1,a,1e15\ni1,b,1e15\ni2,a,-1e15\ni2,b,-1e15\n")
    out = tmp_path / "labels.csv"
    code, output = hilt("quality", "aggregate", str(answers), "--method", "mean",
                        "--out", str(out))
    assert code == 0, output
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    assert [(item, float(label)) for item, label, _ in rows] == [("i1", 1e15), ("i2", -1e15)]


@pytest.mark.parametrize("body", ["", "\n\n", "\r\n"])
@pytest.mark.parametrize("command", [
    ["quality", "aggregate", "{answers}", "--method", "mv", "--out", "{out}"],
    ["quality", "aggregate", "{answers}", "--method", "median", "--out", "{out}"],
    ["quality", "agreement", "{answers}", "--metric", "percent"],
])
def test_badinput_quality_answers_with_only_a_header_are_refused(
        tmp_path: Path, body: str, command: list[str]) -> None:
    answers = tmp_path / "answers.csv"
    answers.write_text("item,reviewer,label\n" + body, newline="")
    out = tmp_path / "labels.csv"
    args = [a.format(answers=answers, out=out) for a in command]
    code, output = hilt(*args)
    assert code == 2, output
    assert f"{answers}: the file has no rows below its header" in output
    assert not out.exists()


def test_badinput_quality_gold_with_only_a_header_is_refused(tmp_path: Path) -> None:
    answers = tmp_path / "answers.csv"
    answers.write_text("item,reviewer,label\ni1,a,x\ni1,b,x\n")
    gold = tmp_path / "gold.csv"
    gold.write_text("item,label\n")
    out, report = tmp_path / "labels.csv", tmp_path / "report.json"
    code, output = hilt("quality", "aggregate", str(answers), "--method", "ds",
                        "--gold", str(gold), "--out", str(out),
                                 "--report", str(report))
    assert code == 2, output
    assert f"{gold}: the file has no rows below its header" in output
    assert not out.exists() and not report.exists()


def test_badinput_quality_interval_alpha_does_not_depend_on_the_unit(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    base = rng.integers(1, 6, size=30).astype(float)
    data = np.vstack([base, base + (rng.random(30) < 0.2), base - (rng.random(30) < 0.2)])
    alpha = krippendorff_alpha(data, "interval")
    assert 0.5 < alpha < 1
    # Labels in a small unit were taken for labels that do not vary (alpha undefined).
    assert krippendorff_alpha(data * 1e-7, "interval") == pytest.approx(alpha, rel=1e-12)
    assert krippendorff_alpha(data * 1e9, "interval") == pytest.approx(alpha, rel=1e-12)
    answers = tmp_path / "small.csv"
    answers.write_text("item,reviewer,label\n" + "".join(
        f"i{i},{r},{float(data[k, i]) * 1e-7!r}\n" for i in range(30) for k, r in enumerate("abc")))
    code, output = hilt("quality", "agreement", str(answers), "--metric",
                        "krippendorff", "--level", "interval", "--resamples", "40")
    assert code == 0, output
    assert json.loads(output)["value"] == pytest.approx(alpha, rel=1e-12)
