"""Guards against silently wrong numbers: missing cells, unordered text labels used as
ordered, bootstrap intervals that claim more than the data holds, outputs that would
replace their inputs, ambiguous headers and drift settings that make no sense."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.quality import (
    MACE,
    Answers,
    DawidSkene,
    MajorityVote,
    bootstrap_interval,
    cohen_kappa,
    krippendorff_alpha,
    measure_agreement,
)
from hilt.quality.bootstrap import MIN_BOOTSTRAP_UNITS, min_resamples
from hilt.quality.drift.windows import DriftConfig

runner = CliRunner()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- missing cells ---------------------------------------------------------------------

BLANK_LABEL = "item,reviewer,label\na,r1,1\na,r2,\nb,r1,0\nb,r2,0\n"
BLANK_ITEM = "item,reviewer,label\na,r1,1\na,r2,1\n,r1,1\n,r2,0\n"
BLANK_REVIEWER = "item,reviewer,label\na,r1,1\na,,1\n"


@pytest.mark.parametrize(("text", "field", "position"), [
    (BLANK_LABEL, "label", 1), (BLANK_ITEM, "item", 2), (BLANK_REVIEWER, "reviewer", 1)])
def test_blank_cells_from_read_csv_are_refused_naming_column_and_row(
        text: str, field: str, position: int) -> None:
    frame = pd.read_csv(io.StringIO(text))
    with pytest.raises(InputError, match=f"row position {position}") as caught:
        Answers.from_frame(frame)
    assert caught.value.field == field


@pytest.mark.parametrize("use", [
    lambda f: MajorityVote().fit(f), lambda f: DawidSkene().fit(f), lambda f: MACE().fit(f),
    lambda f: measure_agreement(f, "krippendorff"), lambda f: measure_agreement(f, "cohen"),
    lambda f: measure_agreement(f, "percent")])
def test_models_and_metrics_refuse_missing_answers(use: object) -> None:
    for text in (BLANK_LABEL, BLANK_ITEM):
        with pytest.raises(InputError, match="missing"):
            use(pd.read_csv(io.StringIO(text)))  # type: ignore[operator]


def test_none_label_is_missing_too() -> None:
    with pytest.raises(InputError) as caught:
        Answers.from_columns(["a", "a"], ["r1", "r2"], ["x", None])
    assert caught.value.field == "label"


# --- order of labels -------------------------------------------------------------------

ORDINAL = pd.DataFrame({"item": list("aabbccddee"), "reviewer": ["r1", "r2"] * 5,
                        "label": ["low", "high", "mid", "mid", "low", "mid", "high", "high",
                                  "low", "low"]})
RANK = {"low": 1, "mid": 2, "high": 3}


@pytest.mark.parametrize(("metric", "level", "weights"), [
    ("krippendorff", "ordinal", None), ("cohen", "nominal", "linear"),
    ("cohen", "nominal", "quadratic")])
def test_ordered_metrics_refuse_text_labels_without_an_order(metric: str, level: str,
                                                             weights: str | None) -> None:
    with pytest.raises(ValueError, match="ordered labels"):
        measure_agreement(ORDINAL, metric, level, weights)  # type: ignore[arg-type]


@pytest.mark.parametrize(("metric", "level", "weights"), [
    ("krippendorff", "ordinal", None), ("cohen", "nominal", "linear")])
def test_ordered_metrics_use_the_given_order_or_numeric_text(metric: str, level: str,
                                                             weights: str | None) -> None:
    numbers = ORDINAL.assign(label=ORDINAL["label"].map(RANK))
    expected = measure_agreement(numbers, metric, level, weights).value  # type: ignore[arg-type]
    given = Answers.from_frame(ORDINAL, classes=["low", "mid", "high"])
    assert measure_agreement(given, metric, level, weights).value == pytest.approx(expected)  # type: ignore[arg-type]
    # "9" < "10" < "11" as numbers, not as text
    text = ORDINAL.assign(label=ORDINAL["label"].map({"low": "9", "mid": "10", "high": "11"}))
    assert measure_agreement(text, metric, level, weights).value == pytest.approx(expected)  # type: ignore[arg-type]


def test_plain_functions_order_numeric_text_and_refuse_other_text() -> None:
    first, second = ["9", "10", "9", "11", "10"], ["11", "10", "10", "11", "9"]
    as_numbers = [[float(v) for v in first], [float(v) for v in second]]
    assert krippendorff_alpha([first, second], "ordinal") == pytest.approx(
        krippendorff_alpha(as_numbers, "ordinal"))
    assert cohen_kappa(first, second, "linear") == pytest.approx(
        cohen_kappa(as_numbers[0], as_numbers[1], "linear"))
    with pytest.raises(ValueError, match="value_domain"):
        krippendorff_alpha([["low", "mid"], ["high", "mid"]], "ordinal")
    with pytest.raises(ValueError, match="labels="):
        cohen_kappa(["low", "mid"], ["high", "mid"], "linear")
    # nominal use of text keeps working without an order
    assert cohen_kappa(["low", "mid"], ["low", "mid"]) == 1.0


# --- bootstrap intervals ---------------------------------------------------------------


def _agreeing(n_items: int) -> pd.DataFrame:
    return pd.DataFrame({"item": np.repeat(np.arange(n_items), 2),
                         "reviewer": ["r1", "r2"] * n_items,
                         "label": np.repeat(np.arange(n_items) % 2, 2)})


def test_too_few_items_give_no_interval() -> None:
    result = measure_agreement(_agreeing(2), "percent")
    assert result.value == 1.0 and result.ci_low is None and result.ci_high is None
    assert result.note is not None and str(MIN_BOOTSTRAP_UNITS) in result.note
    one = pd.DataFrame({"item": [1, 1], "reviewer": ["a", "b"], "label": ["x", "y"]})
    fleiss = measure_agreement(one, "fleiss")
    assert fleiss.value == -1.0 and fleiss.ci_low is None and fleiss.note


def test_items_that_all_say_the_same_give_no_interval() -> None:
    result = measure_agreement(_agreeing(30), "percent")
    assert result.value == 1.0 and result.ci_low is None and result.ci_high is None
    assert result.note is not None and "same value" in result.note


def test_resamples_must_fill_both_tails() -> None:
    assert min_resamples(0.95) == 40 and min_resamples(0.9) == 20 and min_resamples(0.99) == 200
    frame = _agreeing(10).assign(label=[0, 1] * 10)
    with pytest.raises(ValueError, match="at least 40"):
        measure_agreement(frame, "percent", n_resamples=39)
    assert measure_agreement(frame, "percent", n_resamples=40).n_resamples_defined == 40


class _ShareOfUnitsDrawn:
    """A statistic whose bootstrap distribution lies wholly below its estimate (1.0)."""

    n_units = 10

    def __call__(self, unit_weights: np.ndarray) -> float:
        return float((unit_weights > 0).mean())


def test_interval_holds_its_estimate() -> None:
    low, high, _ = bootstrap_interval(_ShareOfUnitsDrawn(), 200)
    assert low < 1.0 and high == 1.0


@pytest.mark.parametrize("resamples", ["1", "2", "3", "39"])
def test_cli_refuses_too_few_resamples(tmp_path: Path, resamples: str) -> None:
    answers = _write(tmp_path / "a.csv", "item,reviewer,label\na,r1,x\na,r2,x\n")
    result = runner.invoke(app, ["quality", "agreement", str(answers), "--metric", "percent",
                                 "--resamples", resamples])
    assert isinstance(result.exception, InputError)
    assert result.exception.field == "--resamples" and "40" in result.exception.reason


def test_cli_prints_null_bounds_with_a_note_for_two_items(tmp_path: Path) -> None:
    answers = _write(tmp_path / "two.csv", "item,reviewer,label\na,r1,x\na,r2,x\n"
                                           "b,r1,y\nb,r2,y\n")
    result = runner.invoke(app, ["quality", "agreement", str(answers), "--metric", "percent"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["value"] == 1.0 and payload["ci_low"] is None
    assert payload["ci_high"] is None and payload["note"]


# --- outputs never replace inputs -------------------------------------------------------

ANSWERS = "item,reviewer,label\na,r1,x\na,r2,x\nb,r1,y\nb,r2,x\n"


@pytest.mark.parametrize(("target", "option"), [
    ("answers", "--out"), ("gold", "--out"), ("answers", "--report"), ("gold", "--report"),
    ("link", "--out")])
def test_outputs_may_not_overwrite_an_input(tmp_path: Path, target: str, option: str) -> None:
    answers = _write(tmp_path / "answers.csv", ANSWERS)
    gold = _write(tmp_path / "gold.csv", "item,label\na,x\n")
    link = tmp_path / "link.csv"
    link.symlink_to(answers)
    victim = {"answers": answers, "gold": gold, "link": link}[target]
    paths = {"--out": tmp_path / "labels.csv", "--report": tmp_path / "report.json"}
    paths[option] = victim
    result = runner.invoke(app, ["quality", "aggregate", str(answers), "--gold", str(gold),
                                 "--out", str(paths["--out"]),
                                 "--report", str(paths["--report"])])
    assert isinstance(result.exception, InputError), result.output
    assert result.exception.field == option and "overwrite" in result.exception.reason
    assert answers.read_text() == ANSWERS and gold.read_text() == "item,label\na,x\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.csv", "gold.csv", "link.csv"]


# --- headers and --order ---------------------------------------------------------------


@pytest.mark.parametrize(("command", "header", "field"), [
    ("aggregate", "item,reviewer,label,label", "label"),
    ("aggregate", "item,item,reviewer,label", "item"),
    ("gold", "item,label,label", "label")])
def test_a_repeated_header_column_is_refused(tmp_path: Path, command: str, header: str,
                                             field: str) -> None:
    rows = "a,r1,x,y\n" if command == "aggregate" else "a,x,y\n"
    bad = _write(tmp_path / "bad.csv", f"{header}\n{rows}")
    answers = _write(tmp_path / "answers.csv", ANSWERS) if command == "gold" else bad
    options = ["--gold", str(bad)] if command == "gold" else []
    result = runner.invoke(app, ["quality", "aggregate", str(answers), "--out",
                                 str(tmp_path / "labels.csv"), *options])
    error = result.exception
    assert isinstance(error, InputError), result.output
    assert (error.file, error.line, error.field) == (str(bad), 1, field)
    assert not (tmp_path / "labels.csv").exists()


def test_order_entries_are_trimmed_like_csv_values(tmp_path: Path) -> None:
    answers = _write(tmp_path / "ord.csv", "item,reviewer,label\n" + "".join(
        f"{item},{reviewer},{label}\n" for item, reviewer, label
        in ORDINAL.itertuples(index=False)))
    outputs = []
    for order in ("low, mid, high", "low,mid,high"):
        result = runner.invoke(app, ["quality", "agreement", str(answers), "--metric",
                                     "krippendorff", "--level", "ordinal", "--order", order])
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.stdout)["value"])
    assert outputs[0] == outputs[1] and math.isfinite(outputs[0])


# --- drift settings --------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 0.0, 0.5, -1])
def test_drift_min_expected_below_one_is_refused(value: float) -> None:
    with pytest.raises(InputError) as caught:
        DriftConfig(min_expected=value)
    assert caught.value.field == "min_expected"
    assert DriftConfig(min_expected=1).min_expected == 1


@pytest.mark.parametrize(("settings", "field"), [
    ({"history_windows": 3}, "history_windows"),
    ({"lookback_windows": 91}, "lookback_windows"),
    ({"history_windows": 10, "lookback_windows": 20}, "lookback_windows"),
    ({"reference_windows": 100}, "reference_windows"),
    ({"history_windows": 4, "lookback_windows": 2}, "history_windows")])
def test_drift_window_conflicts_name_the_setting_that_was_written(
        settings: dict[str, int], field: str) -> None:
    with pytest.raises(InputError) as caught:
        DriftConfig.from_dict(settings, file="drift.yaml")
    assert (caught.value.file, caught.value.field) == ("drift.yaml", field)
