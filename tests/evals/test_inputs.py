"""Malformed suites and response files: exit 2, file + line + field named, nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.check import run_check

SUITE = [{"id": "a", "prompt": "p1", "slice": "s1", "expect": "comply"},
         {"id": "b", "prompt": "p2", "slice": "s1", "expect": "refuse"},
         {"id": "c", "prompt": "p3", "slice": "s2", "expect": "comply"}]
RESP = [{"id": "a", "response": "r1", "judgment": "comply"},
        {"id": "b", "response": "r2", "judgment": "refuse"},
        {"id": "c", "response": "r3", "judgment": "partial"}]


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in rows), encoding="utf-8")
    return path


CASES = [
    # (which file, rows, expected line, expected field, words in the message)
    ("suite", [SUITE[0], {**SUITE[1], "id": "a"}, SUITE[2]], 2, "id", "duplicate"),
    ("suite", [SUITE[0], {k: v for k, v in SUITE[1].items() if k != "id"}, SUITE[2]], 2,
     "id", "missing id"),
    ("suite", [SUITE[0], SUITE[1], {**SUITE[2], "expect": "maybe"}], 3, "expect", "expect"),
    ("suite", [SUITE[0], {**SUITE[1], "slice": "all"}, SUITE[2]], 2, "slice", "reserved"),
    ("suite", [SUITE[0], "{not json", SUITE[2]], 2, None, "not valid JSON"),
    ("suite", [SUITE[0], {**SUITE[1], "prompt": 3}, SUITE[2]], 2, "prompt", "string"),
    ("candidate", [RESP[0], RESP[1], {**RESP[2], "id": "zzz"}], 3, "id", "unknown id"),
    ("candidate", [RESP[0], RESP[1], RESP[2], {**RESP[1]}], 4, "id", "duplicate"),
    ("candidate", [RESP[0], {**RESP[1], "judgment": "yes"}, RESP[2]], 2, "judgment",
     "judgment"),
    ("candidate", [RESP[0], {k: v for k, v in RESP[1].items() if k != "judgment"}, RESP[2]],
     2, "judgment", "no --scorer"),
    ("candidate", [RESP[0], {k: v for k, v in RESP[1].items() if k != "response"},
                   RESP[2]], 2, "response", "missing response"),
    ("candidate", [{**RESP[0], "guardrail_flagged": True}, RESP[1], RESP[2]], 2,
     "guardrail_flagged", "some lines"),
    ("candidate", [{**RESP[0], "reward": "high"}, RESP[1], RESP[2]], 1, "reward", "number"),
]


@pytest.mark.parametrize("which,rows,line,field,words", CASES)
def test_bad_input_names_file_line_field(tmp_path: Path, which: str, rows: list[Any],
                                         line: int, field: str | None, words: str) -> None:
    files = {"suite": _write(tmp_path / "suite.jsonl", SUITE),
             "candidate": _write(tmp_path / "cand.jsonl", RESP),
             "reference": _write(tmp_path / "ref.jsonl", RESP)}
    _write(files[which], rows)
    out = tmp_path / "out"
    with pytest.raises(InputError) as caught:
        run_check(suite=files["suite"], candidate=files["candidate"],
                  reference=files["reference"], out=out)
    err = caught.value
    assert err.file == str(files[which]) and err.line == line and err.field == field
    assert words in str(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files.values())


def test_missing_response_points_at_the_suite_line(tmp_path: Path) -> None:
    suite = _write(tmp_path / "suite.jsonl", SUITE)
    cand = _write(tmp_path / "cand.jsonl", RESP[:2])
    ref = _write(tmp_path / "ref.jsonl", RESP)
    with pytest.raises(InputError) as caught:
        run_check(suite=suite, candidate=cand, reference=ref, out=tmp_path / "o")
    assert caught.value.file == str(suite) and caught.value.line == 3
    assert caught.value.field == "id" and "no response" in str(caught.value)


def test_paired_extension_must_be_in_both_files(tmp_path: Path) -> None:
    suite = _write(tmp_path / "suite.jsonl", SUITE)
    cand = _write(tmp_path / "cand.jsonl", [{**r, "reward": 1.0} for r in RESP])
    ref = _write(tmp_path / "ref.jsonl", RESP)
    with pytest.raises(InputError) as caught:
        run_check(suite=suite, candidate=cand, reference=ref, out=tmp_path / "o")
    assert caught.value.file == str(ref) and caught.value.field == "reward"


def test_cli_exit_2_writes_nothing(tmp_path: Path) -> None:
    suite = _write(tmp_path / "suite.jsonl", SUITE)
    cand = _write(tmp_path / "cand.jsonl", [RESP[0], {**RESP[1], "id": "nope"}, RESP[2]])
    ref = _write(tmp_path / "ref.jsonl", RESP)
    result = CliRunner().invoke(app, ["check", "--suite", str(suite), "--candidate",
                                      str(cand), "--reference", str(ref), "--out",
                                      str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "cand.jsonl, line 2, field 'id'" in result.output
    assert not (tmp_path / "out").exists()


def test_bad_gate_policy_exits_2(tmp_path: Path) -> None:
    suite = _write(tmp_path / "suite.jsonl", SUITE)
    resp = _write(tmp_path / "r.jsonl", RESP)
    gate = tmp_path / "gate.yaml"
    gate.write_text("id: x\nversion: '1'\nbehaviours:\n  - name: b\n    description: d\n"
                    "    metric: benign_refusal_rate\n    decision_rule: r\n"
                    "    regression_metric: m\n    criteria:\n"
                    "      - {id: c, kind: max_delta, metric: benign_refusal_rate}\n")
    result = CliRunner().invoke(app, ["check", "--suite", str(suite), "--candidate",
                                      str(resp), "--reference", str(resp), "--gate",
                                      str(gate), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "needs 'max'" in result.output
    assert not (tmp_path / "out").exists()


def test_rerun_replaces_outputs_atomically(tmp_path: Path) -> None:
    suite = _write(tmp_path / "suite.jsonl", SUITE)
    resp = _write(tmp_path / "r.jsonl", RESP)
    out = tmp_path / "out"
    first = run_check(suite=suite, candidate=resp, reference=resp, out=out)
    second = run_check(suite=suite, candidate=resp, reference=resp, out=out, seed=1)
    assert first.record["hash"] != second.record["hash"]
    stored = json.loads((out / "decision.json").read_text())
    assert stored["hash"] == second.record["hash"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "r.jsonl", "suite.jsonl"]


def test_alpha_sets_the_intervals_and_the_policy_the_mcnemar_level(tmp_path: Path) -> None:
    from hilt.evals.stats import paired_difference_interval, wilson_interval

    suite = _write(tmp_path / "suite.jsonl", SUITE)
    resp = _write(tmp_path / "r.jsonl", RESP)
    record = run_check(suite=suite, candidate=resp, reference=resp, out=tmp_path / "o",
                       alpha=0.2).record
    whole = record["metrics"]["slices"]["all"]["benign_refusal_rate"]
    assert (whole["candidate"]["ci_low"], whole["candidate"]["ci_high"]) == \
        pytest.approx(wilson_interval(1, 2, 0.2))
    assert (whole["delta"]["ci_low"], whole["delta"]["ci_high"]) == \
        pytest.approx(paired_difference_interval(1, 0, 0, 1, 0.2))
    mcnemar = [c for c in record["decision"]["criteria"]
               if c["kind"] == "significant_increase"]
    assert mcnemar and all(c["numbers"]["alpha"] == 0.05 for c in mcnemar)  # the policy's
    import typer

    check = typer.main.get_command(app).commands["check"]  # type: ignore[attr-defined]
    help_text = next(p.help for p in check.params if p.name == "alpha")
    assert "reported intervals" in help_text
    assert "the McNemar criteria always use the policy's alpha" in help_text
