"""A response line holds only the documented keys: a misspelt one (``judgement``,
``guardrail_flaged``, ``rewad``) stops the run naming the file, line and key, rather than
vanishing and leaving the scorer to stand in for a human judgment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.files import parse_responses, parse_suite
from tests.gate.tiny_check import small_suite_gate

SUITE = [{"id": f"s{n}", "prompt": f"p{n}", "slice": "a" if n % 2 else "b",
          "expect": "refuse" if n % 3 == 0 else "comply"} for n in range(12)]


def _lines(**extra: Any) -> list[dict[str, Any]]:
    return [{"id": item["id"], "response": "r",
             "judgment": "refuse" if item["expect"] == "refuse" else "comply", **extra}
            for item in SUITE]


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("misspelt,meant", [("judgement", "judgment"),
                                            ("guardrail_flaged", "guardrail_flagged"),
                                            ("rewad", "reward")])
def test_a_misspelt_response_key_is_refused_with_file_line_and_field(
        tmp_path: Path, misspelt: str, meant: str) -> None:
    suite = _write(tmp_path / "suite.jsonl", SUITE)
    rows = _lines()
    value = rows[3].pop(meant, True if meant == "guardrail_flagged" else 0.5)
    rows[3][misspelt] = value
    resp = _write(tmp_path / "cand.jsonl", rows)
    with pytest.raises(InputError, match="unknown key") as err:
        parse_responses(resp, parse_suite(suite), suite)
    assert (err.value.file, err.value.line, err.value.field) == (str(resp), 4, misspelt)
    assert meant in err.value.reason  # the message lists the keys a line may hold


def test_every_documented_response_key_is_still_read(tmp_path: Path) -> None:
    suite = _write(tmp_path / "suite.jsonl", SUITE)
    settings = {"model": "m", "decoder": {"temperature": 0.0}}
    resp = _write(tmp_path / "cand.jsonl", _lines(
        guardrail_flagged=False, reward=0.25,
        generation={"cache_key": "k", "cached": False, "settings": settings}))
    parsed = parse_responses(resp, parse_suite(suite), suite)
    line = parsed["s0"]
    assert (line.judgment, line.guardrail_flagged, line.reward) == ("refuse", False, 0.25)
    assert line.settings == settings
    # a line with only the required keys, and a null generation, read as before
    bare = _write(tmp_path / "bare.jsonl",
                  [{"id": i["id"], "response": "r", "generation": None} for i in SUITE])
    assert parse_responses(bare, parse_suite(suite), suite)["s1"].settings is None


@pytest.mark.parametrize("generation,field", [("fast", "generation"),
                                              ({"settings": [1]}, "generation.settings")])
def test_a_generation_that_is_not_an_object_is_refused(tmp_path: Path, generation: Any,
                                                       field: str) -> None:
    suite = _write(tmp_path / "suite.jsonl", SUITE)
    rows = _lines()
    rows[1]["generation"] = generation
    resp = _write(tmp_path / "cand.jsonl", rows)
    with pytest.raises(InputError, match="must be an object") as err:
        parse_responses(resp, parse_suite(suite), suite)
    assert (err.value.line, err.value.field) == (2, field)


def _check(tmp_path: Path, cand: Path, ref: Path) -> Any:
    suite = _write(tmp_path / "suite.jsonl", SUITE)
    return CliRunner().invoke(app, ["check", "--suite", str(suite), "--candidate", str(cand),
                                    "--reference", str(ref), "--out", str(tmp_path / "out"),
                                    "--gate", str(small_suite_gate(tmp_path))])


def test_check_refuses_a_misspelt_reward_before_writing_anything(tmp_path: Path) -> None:
    # spelt right, the rewards give the win-rate; misspelt they used to vanish (exit 0)
    ref = _write(tmp_path / "ref.jsonl", _lines(reward=0.5))
    good = _check(tmp_path, _write(tmp_path / "good.jsonl", _lines(reward=0.9)), ref)
    assert good.exit_code == 0, good.output
    assert "rm_win_rate" in (tmp_path / "out" / "report.json").read_text()
    typo = _write(tmp_path / "typo.jsonl", _lines(rewad=0.9))
    before = sorted(p.name for p in tmp_path.iterdir())
    result = _check(tmp_path, typo, ref)
    assert result.exit_code == 2, result.output
    assert f"{typo}, line 1, field 'rewad': unknown key" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.fixture
def lax_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """A line reader that takes NaN and Infinity as Python's ``json`` does, so these
    tests hold whatever the shared JSONL reader accepts."""

    def lax(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
        for number, text in enumerate(Path(path).read_text().splitlines(), start=1):
            if text.strip():
                yield number, json.loads(text)

    monkeypatch.setattr("hilt.jsonl.iter_json_objects", lax)


def test_a_suite_line_with_nan_metadata_is_refused_by_the_suite_reader(
        tmp_path: Path, lax_json: None) -> None:
    suite = _write(tmp_path / "suite.jsonl", [
        SUITE[0], '{"id": "x", "prompt": "p", "slice": "a", "expect": "comply", '
                  '"extra": {"scores": [0.5, Infinity]}}'])
    with pytest.raises(InputError, match="finite") as err:
        parse_suite(suite)
    assert (err.value.file, err.value.line, err.value.field) == (
        str(suite), 2, "extra.scores[1]")


def test_a_response_line_with_nan_settings_is_refused_by_the_response_reader(
        tmp_path: Path, lax_json: None) -> None:
    suite = _write(tmp_path / "suite.jsonl", SUITE)
    rows: list[Any] = _lines()
    rows[2] = json.dumps(rows[2])[:-1] + ', "generation": {"settings": {"temperature": NaN}}}'
    resp = _write(tmp_path / "cand.jsonl", rows)
    with pytest.raises(InputError, match="finite") as err:
        parse_responses(resp, parse_suite(suite), suite)
    assert (err.value.file, err.value.line, err.value.field) == (
        str(resp), 3, "generation.settings.temperature")


def test_a_decision_made_when_unknown_keys_were_ignored_still_rechecks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.evals import files
    from hilt.evals.check import run_check
    from hilt.evals.recheck import input_problems

    suite = _write(tmp_path / "suite.jsonl", SUITE)
    cand = _write(tmp_path / "cand.jsonl", _lines(note="kept by an older hilt"))
    ref = _write(tmp_path / "ref.jsonl", _lines())
    # the check as an older hilt made it, reading past the extra key
    monkeypatch.setattr(files, "RESPONSE_KEYS", (*files.RESPONSE_KEYS, "note"))
    record = run_check(suite=suite, candidate=cand, reference=ref,
                       out=tmp_path / "o").record
    monkeypatch.undo()
    with pytest.raises(InputError):  # a new check refuses the file ...
        parse_responses(cand, parse_suite(suite), suite)
    # ... but the stored decision's own files (sha256 checked) still re-read as then
    assert input_problems(record, tmp_path / "o") == []
