"""Edge-case input to ``hilt check``: a reward too large for a float, slice names that
fixed-width text would merge, an output folder that is a symbolic-link loop. Each is
either measured as given or refused with exit 2 naming file, line and field, nothing
written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.files import parse_responses, parse_suite
from hilt.evals.metrics import compute_metrics
from hilt.evals.paired import columns_from_table
from hilt.gate.decision import verify


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in rows), encoding="utf-8")
    return path


def _check(tmp_path: Path, suite: Path, cand: Path, ref: Path, out: Path) -> Any:
    return CliRunner().invoke(app, ["check", "--suite", str(suite), "--candidate",
                                    str(cand), "--reference", str(ref), "--out", str(out)])


SUITE = [{"id": "a", "prompt": "p1", "slice": "s", "expect": "comply"},
         {"id": "b", "prompt": "p2", "slice": "s", "expect": "refuse"}]


def test_a_reward_too_large_for_a_float_names_its_line(tmp_path: Path) -> None:
    suite = _write(tmp_path / "suite.jsonl", SUITE)
    huge = "1" + "0" * 400  # a finite JSON integer that no float can hold
    cand = _write(tmp_path / "cand.jsonl", [
        {"id": "a", "response": "r", "judgment": "comply", "reward": 1},
        '{"id": "b", "response": "r", "judgment": "refuse", "reward": ' + huge + "}"])
    with pytest.raises(InputError, match="finite") as err:
        parse_responses(cand, parse_suite(suite), suite)
    assert (err.value.file, err.value.line, err.value.field) == (str(cand), 2, "reward")

    ref = _write(tmp_path / "ref.jsonl", [
        {"id": "a", "response": "r", "judgment": "comply", "reward": 0},
        {"id": "b", "response": "r", "judgment": "refuse", "reward": 0}])
    result = _check(tmp_path, suite, cand, ref, tmp_path / "out")
    assert result.exit_code == 2
    assert "cand.jsonl, line 2, field 'reward'" in result.output
    assert "OverflowError" not in result.output
    assert not (tmp_path / "out").exists()


def test_slices_differing_by_a_trailing_nul_are_not_merged(tmp_path: Path) -> None:
    """numpy's fixed-width text drops trailing NULs: "x\\0" was counted as slice "x"."""
    suite_rows = ([{"id": f"x{i}", "prompt": "p", "slice": "x", "expect": "comply"}
                   for i in range(4)]
                  + [{"id": f"z{i}", "prompt": "p", "slice": "x\u0000", "expect": "comply"}
                     for i in range(3)])
    refused = {"x0", "z0", "z1"}
    suite = _write(tmp_path / "suite.jsonl", suite_rows)
    cand = _write(tmp_path / "cand.jsonl", [
        {"id": r["id"], "response": "r",
         "judgment": "refuse" if r["id"] in refused else "comply"} for r in suite_rows])
    ref = _write(tmp_path / "ref.jsonl", [
        {"id": r["id"], "response": "r", "judgment": "comply"} for r in suite_rows])
    out = tmp_path / "out"
    result = _check(tmp_path, suite, cand, ref, out)
    assert result.exit_code in (0, 1), result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert set(report["slices"]) == {"all", "x", "x\u0000"}
    for name, count, n in (("x", 1, 4), ("x\u0000", 2, 3), ("all", 3, 7)):
        rate = report["slices"][name]["benign_refusal_rate"]["candidate"]
        low, high = proportion_confint(count, n, 0.05, method="wilson")
        assert (rate["count"], rate["n"]) == (count, n)
        assert rate["ci_low"] == pytest.approx(low, abs=1e-12)
        assert rate["ci_high"] == pytest.approx(high, abs=1e-12)
    decision = json.loads((out / "decision.json").read_text(encoding="utf-8"))
    assert verify(decision).ok


def test_a_slice_called_all_with_a_trailing_nul_is_its_own_slice() -> None:
    table = {"id": ["a", "b"], "slice": ["all\u0000", "s"], "expect": ["comply"] * 2,
             "candidate": ["refuse", "comply"], "reference": ["comply"] * 2,
             "candidate_source": ["human"] * 2, "reference_source": ["human"] * 2}
    metrics = compute_metrics(columns_from_table(table))
    assert set(metrics["slices"]) == {"all", "all\u0000", "s"}
    assert metrics["slices"]["all"]["benign_refusal_rate"]["n"] == 2
    assert np.isclose(metrics["slices"]["all\u0000"]["benign_refusal_rate"]["candidate"]
                      ["rate"], 1.0)


def test_an_output_folder_that_is_a_symlink_loop_is_refused(tmp_path: Path) -> None:
    suite = _write(tmp_path / "suite.jsonl", SUITE)
    resp = _write(tmp_path / "resp.jsonl", [
        {"id": "a", "response": "r", "judgment": "comply"},
        {"id": "b", "response": "r", "judgment": "refuse"}])
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    for out in (tmp_path / "loop_a", tmp_path / "loop_a" / "sub"):
        result = _check(tmp_path, suite, resp, resp, out)
        assert result.exit_code == 2, result.output
        assert f"{out}, field '--out'" in result.output
        assert "RuntimeError" not in result.output
