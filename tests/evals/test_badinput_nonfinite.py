"""NaN, Infinity and overflowing numbers in JSONL inputs (suites, response files) are
refused when read, naming file, line and field; one that would still reach the
decision record is reported as such, never as a bare ValueError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.files import parse_suite
from hilt.jsonl import iter_json_objects

SUITE = [{"id": "a", "prompt": "p1", "slice": "s1", "expect": "comply"},
         {"id": "b", "prompt": "p2", "slice": "s1", "expect": "refuse"}]
RESP = [{"id": "a", "response": "r1", "judgment": "comply"},
        {"id": "b", "response": "r2", "judgment": "refuse"}]


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_jsonl_number_that_is_not_finite_is_refused(tmp_path: Path, literal: str) -> None:
    f = _write(tmp_path / "x.jsonl", ['{"a": 1}', '{"b": {"c": [0.5, ' + literal + ']}}'])
    with pytest.raises(InputError, match="finite") as err:
        list(iter_json_objects(f))
    assert (err.value.file, err.value.line, err.value.field) == (str(f), 2, "b.c[1]")


def test_a_repeated_key_is_named_by_its_path(tmp_path: Path) -> None:
    f = _write(tmp_path / "x.jsonl", ['{"generation": {"settings": {"t": 1, "t": 2}}}'])
    with pytest.raises(InputError, match="more than once") as err:
        list(iter_json_objects(f))
    assert err.value.field == "generation.settings.t"


def test_a_suite_with_nan_is_refused_when_read(tmp_path: Path) -> None:
    suite = _write(tmp_path / "s.jsonl", [SUITE[0], '{"id": "b", "prompt": "p2", "slice": '
                                          '"s1", "expect": "refuse", "score": NaN}'])
    with pytest.raises(InputError) as err:
        parse_suite(suite)
    assert (err.value.line, err.value.field) == (2, "score")


def _check(tmp_path: Path, *extra: str, candidate: Path | None = None) -> Any:
    suite = _write(tmp_path / "suite.jsonl", SUITE)
    ref = _write(tmp_path / "ref.jsonl", RESP)
    return CliRunner().invoke(app, ["check", "--suite", str(suite), "--candidate",
                                    str(candidate or ref), "--reference", str(ref),
                                    "--out", str(tmp_path / "out"),
                                    *extra])


def test_check_names_the_candidate_line_with_nan(tmp_path: Path) -> None:
    cand = _write(tmp_path / "cand.jsonl", [
        RESP[0], json.dumps(RESP[1])[:-1] + ', "generation": {"settings": '
                                            '{"temperature": NaN}}}'])
    result = _check(tmp_path, candidate=cand)
    assert result.exit_code == 2
    assert ("cand.jsonl, line 2, field 'generation.settings.temperature': must be a finite"
            in result.output)
    assert "ValueError" not in result.output


def test_a_non_finite_number_reaching_the_record_is_no_bare_value_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Should one ever get past the readers, the error says what it is and where to
    look, not a bare ``ValueError`` from the JSON encoder."""
    import hilt.cli.evals

    def fails(*_: Any, **__: Any) -> int:
        raise ValueError("Out of range float values are not JSON compliant")

    monkeypatch.setattr(hilt.cli.evals, "_run_check", fails)
    result = _check(tmp_path)
    assert result.exit_code == 2
    assert "ValueError" not in result.output
    assert "not finite (NaN or infinite)" in result.output
    assert f"--candidate {tmp_path / 'ref.jsonl'}" in result.output
