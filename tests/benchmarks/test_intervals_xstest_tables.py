"""XSTest nested-validation and seed tables carry n and 95 % Wilson intervals, in the
benchmark's output and in docs/train.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks.training import nested_line, seeds_summary
from hilt.train import xstest
from hilt.train.stats import rate, wilson_interval

DOCS = Path(__file__).resolve().parents[2] / "docs" / "train.md"
CELL = re.compile(r"(?:\*\*)?(\d\.\d{3})(?:\*\*)? \[(\d\.\d{3}), (\d\.\d{3})\]")


def test_nested_validation_gives_rates_with_n(monkeypatch: pytest.MonkeyPatch) -> None:
    data = {m: [{"completion": f"{m} {i}", "prompt": "p", "harmful": False,
                 "label": "refuse" if i % 2 else "comply"} for i in range(10)]
            for m in xstest.XSTEST_MODELS}
    monkeypatch.setattr(xstest, "load_xstest_completions", lambda folder, m: data[m])
    # every prediction is "refuse": right on the 5 refusals of each 10
    monkeypatch.setattr(xstest, "_fit_predict",
                        lambda train, test, config, with_prompt: (["refuse"] * len(test), 0.5))
    results = xstest.xstest_nested("unused")
    assert len(results) == 3
    for r in results:
        assert list(r["directions"].values()) == [0.5, 0.5] and r["mean"] == 0.5
        for block in r["direction_rates"].values():
            assert (block["successes"], block["n"]) == (5, 10)
        assert r["mean_rate"]["n"] == 20
        assert r["mean_rate"]["ci_low"] == pytest.approx(wilson_interval(10, 20)[0])


def test_nested_line_prints_intervals_and_n() -> None:
    result: dict[str, Any] = {"held_out_model": "gpt4",
                              "direction_rates": {"a->b": rate(393, 450),
                                                  "b->a": rate(417, 450)},
                              "mean_rate": rate(810, 900)}
    line = nested_line("default", result)
    low, high = wilson_interval(810, 900)
    assert f"0.900 [{low:.3f},{high:.3f}]" in line
    assert "0.873 [" in line and "0.927 [" in line
    assert line.split()[-3:] == ["450", "450", "900"]


def test_seed_summary_keeps_n_and_the_interval_of_one_seed() -> None:
    table = [[rate(434, 450)], [rate(435, 450)], [rate(436, 450)]]
    summary = seeds_summary(table)
    mean = summary["mean"][0]
    assert mean["n"] == 450 and mean["value"] == pytest.approx(435 / 450)
    # the same replies every seed: as wide as one seed's interval, not 3 × 450 replies'
    low, high = wilson_interval(435, 450)
    assert (mean["ci_low"], mean["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert summary["min"][0]["successes"] == 434 and summary["max"][0]["successes"] == 436


def _table(start: str) -> list[list[str]]:
    """The cells of the markdown table that follows the line starting with ``start``."""
    lines = DOCS.read_text(encoding="utf-8").splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    rows = []
    for line in lines[first + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


@pytest.mark.parametrize("header", [
    "| classifier | held out gpt4 | held out llama2orig | held out mistralinstruct |",
    "| seed | gpt4 | llama2orig | mistralinstruct |",
])
def test_documented_xstest_accuracies_have_their_wilson_intervals(header: str) -> None:
    rows = _table(header)
    assert len(rows) >= 6
    for row in rows:
        for cell in row[1:]:
            match = CELL.fullmatch(cell)
            assert match, f"no interval in {row[0]!r}: {cell!r}"
            value, low, high = (float(x) for x in match.groups())
            # n = 450 replies per held-out model; the mean over seeds may be fractional
            successes = value * 450 if row[0] == "mean" else round(value * 450)
            w_low, w_high = wilson_interval(successes, 450)
            slack = 0.0016 if row[0] == "mean" else 0.0006
            assert (low, high) == pytest.approx((w_low, w_high), abs=slack), row[0]


def test_documented_nested_means_have_their_wilson_intervals() -> None:
    rows = _table("| classifier | rotation gpt4")
    assert len(rows) == 6
    for row in rows:
        for cell in row[1:]:
            match = re.fullmatch(r"(\d\.\d{3}) / (\d\.\d{3}) / (?:\*\*)?(\d\.\d{3})(?:\*\*)?"
                                 r" \[(\d\.\d{3}), (\d\.\d{3})\]", cell)
            assert match, f"no interval in {row[0]!r}: {cell!r}"
            forward, backward, _, low, high = (float(x) for x in match.groups())
            successes = round(forward * 450) + round(backward * 450)
            w_low, w_high = wilson_interval(successes, 900)
            assert (low, high) == pytest.approx((w_low, w_high), abs=0.0006), row[0]
