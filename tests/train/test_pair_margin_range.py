"""A pair's margin written as an integer past the range of a float (a few hundred
digits: short enough for ``json`` to read) is refused naming line and field, not a
traceback from turning it into a float."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.train.pairs import read_pairs
from tests.ops.climain import run_hilt

GOOD = json.dumps({"prompt": "p", "chosen": "a", "rejected": "b", "margin": 1})


def _file(path: Path, margin_literal: str) -> Path:
    huge = '{"prompt": "q", "chosen": "c", "rejected": "d", "margin": ' + margin_literal + "}"
    path.write_text(GOOD + "\n" + huge + "\n")
    return path


@pytest.mark.parametrize("literal", ["9" * 400, "-" + "9" * 400])
def test_an_integer_margin_past_the_float_range_is_refused(tmp_path: Path,
                                                           literal: str) -> None:
    with pytest.raises(InputError) as err:
        read_pairs(_file(tmp_path / "p.jsonl", literal))
    assert (err.value.line, err.value.field) == (2, "margin")
    assert "400 digits" in err.value.reason and "9" * 20 not in err.value.reason


def test_a_large_integer_margin_within_the_float_range_is_read(tmp_path: Path) -> None:
    pairs = read_pairs(_file(tmp_path / "p.jsonl", "1" + "0" * 300))
    assert pairs[1].margin == 1e300 and isinstance(pairs[1].margin, float)


def test_cli_names_line_and_field(tmp_path: Path) -> None:
    done = run_hilt(["train", "reward", "--pairs", str(_file(tmp_path / "p.jsonl", "9" * 400)),
                     "--out", str(tmp_path / "rm"), "--margin", "--no-register",
                     "--no-progress"])
    assert done.returncode == 2, done.stderr
    assert "line 2, field 'margin'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "rm").exists()
