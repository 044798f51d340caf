"""``hilt quality aggregate`` and ``hilt quality agreement`` (contracts 1 and 2)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError

runner = CliRunner()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _crowd_as_answers(shared_data: Path, tmp_path: Path, name: str) -> tuple[Path, pd.Series]:
    folder = shared_data / "crowd" / name
    frame = pd.read_csv(folder / "answer.csv").rename(
        columns={"question": "item", "worker": "reviewer", "answer": "label"})
    frame["note"] = "ignored"
    path = tmp_path / "answers.csv"
    frame[["note", "label", "reviewer", "item"]].to_csv(path, index=False)
    truth = pd.read_csv(folder / "truth.csv").set_index("question")["truth"]
    return path, truth


@pytest.mark.parametrize("method", ["mv", "ds", "one-coin", "mace"])
def test_aggregate_writes_one_row_per_item(shared_data: Path, tmp_path: Path,
                                           method: str) -> None:
    answers, truth = _crowd_as_answers(shared_data, tmp_path, "rte")
    out = tmp_path / "labels.csv"
    result = runner.invoke(app, ["quality", "aggregate", str(answers), "--method", method,
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["method"] == method and report["n_items"] == 800
    with out.open() as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["item", "label", "confidence"]
    labels = pd.DataFrame(rows[1:], columns=rows[0])
    assert labels["item"].is_unique and len(labels) == 800
    confidence = labels["confidence"].astype(float)
    assert ((confidence >= 0) & (confidence <= 1)).all()
    accuracy = (labels.set_index(labels["item"].astype(int))["label"].astype(int)
                .reindex(truth.index) == truth).mean()
    assert accuracy > 0.85


def test_aggregate_with_gold_reports_reviewer_accuracy(shared_data: Path,
                                                       tmp_path: Path) -> None:
    answers, truth = _crowd_as_answers(shared_data, tmp_path, "temporal")
    gold = tmp_path / "gold.csv"
    truth.iloc[:100].rename_axis("item").rename("label").to_csv(gold)
    out, report_path = tmp_path / "labels.csv", tmp_path / "report.json"
    result = runner.invoke(app, ["quality", "aggregate", str(answers), "--method", "ds",
                                 "--out", str(out), "--gold", str(gold),
                                 "--report", str(report_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == ""  # the report went to the file
    report = json.loads(report_path.read_text())
    assert report["gold"]["n_items"] == 100 and report["gold"]["n_items_answered"] == 100
    with_gold = [row for row in report["reviewers"] if row["n_gold"] > 0]
    assert with_gold and all(row["ci_low"] <= row["gold_accuracy"] <= row["ci_high"]
                             for row in with_gold)
    labels = pd.read_csv(out).set_index("item")
    anchored = labels.loc[truth.index[:100]]
    assert (anchored["label"] == truth.iloc[:100]).all()
    assert (anchored["confidence"] == 1.0).all()


def test_aggregate_scale_methods(tmp_path: Path) -> None:
    answers = _write(tmp_path / "a.csv", "item,reviewer,label\nq1,a,1\nq1,b,2\nq1,c,5\n"
                                         "q2,a,3\nq2,b,4\n")
    for method, expected in (("median", {"q1": 2.0, "q2": 3.5}), ("mean", None)):
        out = tmp_path / f"{method}.csv"
        result = runner.invoke(app, ["quality", "aggregate", str(answers), "--method", method,
                                     "--out", str(out)])
        assert result.exit_code == 0, result.output
        labels = pd.read_csv(out).set_index("item")["label"].to_dict()
        if expected:
            assert labels == expected
        assert set(labels) == {"q1", "q2"}


def test_scale_gold_accuracy_compares_numbers(tmp_path: Path) -> None:
    # "4.0" and "4" are the same rating: a scale method must not count it wrong.
    answers = _write(tmp_path / "a.csv", "item,reviewer,label\na,r1,4.0\na,r2,4\n"
                                         "b,r1,2\nb,r2,2\n")
    gold = _write(tmp_path / "g.csv", "item,label\na,4\n")
    for method in ("median", "mean"):
        result = runner.invoke(app, ["quality", "aggregate", str(answers), "--method", method,
                                     "--out", str(tmp_path / "o.csv"), "--gold", str(gold)])
        assert result.exit_code == 0, result.output
        rows = {r["reviewer"]: r for r in json.loads(result.stdout)["reviewers"]}
        assert rows["r1"]["gold_accuracy"] == rows["r2"]["gold_accuracy"] == 1.0
    # Categorical methods compare labels as text: "4.0" is not the class "4".
    result = runner.invoke(app, ["quality", "aggregate", str(answers), "--method", "mv",
                                 "--out", str(tmp_path / "o.csv"), "--gold", str(gold)])
    rows = {r["reviewer"]: r for r in json.loads(result.stdout)["reviewers"]}
    assert (rows["r1"]["gold_correct"], rows["r2"]["gold_correct"]) == (0, 1)


@pytest.mark.parametrize(("options", "field"), [
    (["--metric", "cohen", "--order", "x,y,x"], "--order"),
    (["--metric", "cohen", "--order", "x,,y"], "--order"),
    (["--metric", "percent", "--confidence", "1.5"], "--confidence"),
    (["--metric", "percent", "--confidence", "0"], "--confidence"),
    (["--metric", "percent", "--resamples", "-5"], "--resamples"),
    (["--metric", "percent", "--resamples", "0"], "--resamples"),
    # numpy's own refusal of a negative seed named the answers file.
    (["--metric", "fleiss", "--seed", "-1"], "--seed"),
])
def test_agreement_bad_options_name_the_option(tmp_path: Path, options: list[str],
                                               field: str) -> None:
    # Checked before the file is read, so the error is the option's, not a column's.
    answers = _write(tmp_path / "a.csv", "item,reviewer,label\na,r1,x\na,r2,x\n"
                                         "b,r1,y\nb,r2,x\n")
    result = runner.invoke(app, ["quality", "agreement", str(answers), *options])
    error = result.exception
    assert isinstance(error, InputError), result.output
    assert (error.file, error.field) == (None, field)


def test_agreement_json_matches_package(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(1, 6, (4, 60)).astype(float)
    data[1:, :40] = data[0, :40]
    data[rng.random(data.shape) < 0.2] = np.nan
    rows = [(f"u{u}", f"r{r}", int(data[r, u])) for r in range(4) for u in range(60)
            if not np.isnan(data[r, u])]
    answers = tmp_path / "answers.csv"
    pd.DataFrame(rows, columns=["item", "reviewer", "label"]).to_csv(answers, index=False)
    for level in ("nominal", "ordinal", "interval", "ratio"):
        result = runner.invoke(app, ["quality", "agreement", str(answers), "--metric",
                                     "krippendorff", "--level", level, "--resamples", "200"])
        assert result.exit_code == 0, result.output
        payload = json.loads(result.stdout)
        expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        assert payload["metric"] == "krippendorff"
        assert payload["value"] == pytest.approx(expected, abs=1e-9)
        assert payload["ci_low"] <= payload["value"] <= payload["ci_high"]
    for metric in ("percent", "fleiss", "cohen"):
        result = runner.invoke(app, ["quality", "agreement", str(answers), "--metric", metric,
                                     "--resamples", "100"])
        payload = json.loads(result.stdout)
        assert result.exit_code == 0 and {"metric", "value", "ci_low", "ci_high"} <= set(payload)


def test_agreement_undefined_value_is_null(tmp_path: Path) -> None:
    answers = _write(tmp_path / "a.csv", "item,reviewer,label\n1,a,x\n1,b,x\n")
    result = runner.invoke(app, ["quality", "agreement", str(answers), "--metric", "fleiss"])
    payload = json.loads(result.stdout)
    assert payload["value"] is None and payload["note"]


@pytest.mark.parametrize(("content", "line", "field"), [
    ("item,reviewer\n1,a\n", 1, "label"),
    ("item,reviewer,label\n1,a,x\n2,,y\n", 3, "reviewer"),
    ("item,reviewer,label\n1,a,x\n2,b\n", 3, "label"),
    ("", 1, None),
])
def test_bad_answers_name_file_line_field_and_write_nothing(tmp_path: Path, content: str,
                                                            line: int,
                                                            field: str | None) -> None:
    answers = _write(tmp_path / "bad.csv", content)
    out = tmp_path / "labels.csv"
    result = runner.invoke(app, ["quality", "aggregate", str(answers), "--out", str(out)])
    error = result.exception
    assert isinstance(error, InputError)
    assert (error.file, error.line, error.field) == (str(answers), line, field)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [answers]


def test_bad_input_variants(tmp_path: Path) -> None:
    answers = _write(tmp_path / "a.csv", "item,reviewer,label\n1,a,x\n1,b,high\n")
    result = runner.invoke(app, ["quality", "agreement", str(answers), "--metric",
                                 "krippendorff", "--level", "interval"])
    assert isinstance(result.exception, InputError) and result.exception.line == 2
    duplicate = _write(tmp_path / "d.csv", "item,reviewer,label\n1,a,x\n1,a,y\n")
    result = runner.invoke(app, ["quality", "agreement", str(duplicate), "--metric", "percent"])
    assert isinstance(result.exception, InputError) and result.exception.line == 3
    gold = _write(tmp_path / "g.csv", "item,label\n1,x\n1,y\n")
    result = runner.invoke(app, ["quality", "aggregate", str(answers), "--out",
                                 str(tmp_path / "o.csv"), "--gold", str(gold)])
    assert isinstance(result.exception, InputError)
    assert (result.exception.file, result.exception.line) == (str(gold), 3)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"item,reviewer,label\n1,a,\xff\n")
    result = runner.invoke(app, ["quality", "aggregate", str(binary), "--out",
                                 str(tmp_path / "o.csv")])
    assert isinstance(result.exception, InputError) and result.exception.line == 2
    assert not (tmp_path / "o.csv").exists()


def test_exit_code_two_and_message_through_the_real_entry_point(tmp_path: Path) -> None:
    answers = _write(tmp_path / "bad.csv", "item,reviewer,label\n1,a,x\n2,b,\n")
    out = tmp_path / "labels.csv"
    completed = subprocess.run([sys.executable, "-c", "from hilt.cli import main; main()",
                                "quality", "aggregate", str(answers), "--out", str(out)],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert f"{answers}, line 3, field 'label'" in completed.stderr
    assert not out.exists()


@pytest.mark.parametrize(("metric", "option", "value"), [
    ("cohen", "--level", "ordinal"), ("percent", "--level", "interval"),
    ("fleiss", "--level", "ratio"), ("krippendorff", "--weights", "quadratic"),
    ("fleiss", "--weights", "linear")])
def test_an_option_the_metric_does_not_read_is_refused(tmp_path: Path, metric: str,
                                                       option: str, value: str) -> None:
    answers = _write(tmp_path / "a.csv", "item,reviewer,label\n" + "".join(
        f"i{i},r{r},{(i + r) % 5 + 1}\n" for i in range(8) for r in range(2)))
    result = runner.invoke(app, ["quality", "agreement", str(answers), "--metric", metric,
                                 option, value])
    # answered, it would be a nominal, unweighted value looking like the one asked for
    assert isinstance(result.exception, InputError), result.output
    assert result.exception.field == option
    # what the metric computes anyway may be named
    plain = "nominal" if option == "--level" else "none"
    ok = runner.invoke(app, ["quality", "agreement", str(answers), "--metric", metric,
                             option, plain, "--resamples", "50"])
    assert ok.exit_code == 0, ok.output
