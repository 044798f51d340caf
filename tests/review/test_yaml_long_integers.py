"""An integer of more than 4,300 decimal digits in any YAML file hilt reads (rubrics, rule
sets, dataset specs, gate policies, recorded facts, drift, quality and triage settings)
is refused with the file, line and field, as in JSON Lines, whatever the interpreter's
own limit on integer text and however the integer is written (decimal, hexadecimal,
octal, binary, base 60): never accepted, and never a ``ValueError`` from deep inside."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hilt.errors import InputError
from hilt.review.yamlio import int_digits_limit, parse_yaml_text
from tests.conftest import migrated_sqlite

from .helpers import HARM, SAFETY_RULES

# notation -> (the integer as written, its decimal digits, refused before it is read)
LONG = {
    "decimal": ("9" * 5000, 5000, False),
    "negative": ("-" + "9" * 5000, 5000, False),
    "underscores": ("1_" + "000_" * 1666 + "000", 5002, False),
    "hexadecimal": ("0x" + "f" * 5000, 6021, False),
    "octal": ("0" + "7" * 6000, 5419, False),
    "binary": ("0b" + "1" * 20000, 6021, False),
    # 60**2500 and more: at least 4446 digits, known without reading them all
    "base 60": ("1" + ":59" * 2500, 4446, True),
}


@pytest.fixture(params=["default", "none"])
def interpreter_limit(request: pytest.FixtureRequest) -> Iterator[None]:
    """The interpreter's own limit on integer text: Python's default, or none at all
    (``PYTHONINTMAXSTRDIGITS=0``), which must not change what a file reads as."""
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(4300 if request.param == "default" else 0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(before)


def _reason(digits: int, at_least: bool = False, limit: int = 4300) -> str:
    return (f"an integer of {'at least ' if at_least else ''}{digits} digits is too long "
            f"(at most {limit} digits)")


def _line_of(text: str, marker: str) -> int:
    return text.count("\n", 0, text.index(marker)) + 1


# --- every YAML entry point -------------------------------------------------------------

def _rubric(path: Path) -> Any:
    from hilt.review.rubrics import load_rubric_file
    return load_rubric_file(path)


def _rules(path: Path) -> Any:
    from hilt.review.escalation import load_rule_file
    return load_rule_file(path)


def _spec(path: Path) -> Any:
    from hilt.data.spec import load_spec
    return load_spec(path)


def _policy(path: Path) -> Any:
    from hilt.gate.policy import load_policy
    return load_policy(path)


def _facts(path: Path) -> Any:
    from hilt.evals.facts import load_facts
    return load_facts(path)


def _drift(path: Path) -> Any:
    from hilt.cli.drift import load_config
    return load_config(path)


def _quality(path: Path) -> Any:
    from hilt.cli.quality import _settings
    return _settings(path)


def _triage(path: Path) -> Any:
    from hilt.review.triage import TriageConfig
    from hilt.review.yamlio import load_yaml
    data, line_of = load_yaml(path)  # as `hilt queue triage --config` reads its file
    return TriageConfig.from_dict(data, file=str(path), line_of=line_of)


def _policy_text() -> str:
    from hilt.gate.policy import default_policy
    text = yaml.safe_dump(default_policy().as_dict(), sort_keys=False)
    return text.replace("min_n: 30", "min_n: INT", 1)


SPEC_HEAD = "name: s\nkind: sft\nsft: {approval_question: ok}\ndedup: {near: false}\n"

# entry point -> (reader, the document with INT where the integer goes, its field)
ENTRIES: dict[str, tuple[Callable[[Path], Any], Callable[[], str], str]] = {
    "rubric": (_rubric, lambda: HARM.read_text().replace("max: 5", "max: INT", 1),
               "questions.2.max"),
    "rules": (_rules, lambda: SAFETY_RULES.read_text().replace("overlap: 3", "overlap: INT",
                                                               1), "defaults.overlap"),
    "dataset spec": (_spec, lambda: SPEC_HEAD + "balance: {strategy: cap, max_per_slice: "
                     "INT}\n", "balance.max_per_slice"),
    "gate policy": (_policy, _policy_text, "behaviours.0.criteria.0.min_n"),
    "facts": (_facts, lambda: "dataset_versions:\n  - records: INT\n",
              "dataset_versions.0.records"),
    "drift config": (_drift, lambda: "reference_windows: 4\nmin_window_n: INT\n",
                     "min_window_n"),
    "quality config": (_quality, lambda: "aggregation:\n  max_iter: INT\n",
                       "aggregation.max_iter"),
    "triage config": (_triage, lambda: "w_sla: 2.0\nnum_perm: INT\n", "num_perm"),
}


@pytest.mark.parametrize("notation", list(LONG))
@pytest.mark.parametrize("entry", list(ENTRIES))
def test_a_long_integer_is_refused_naming_file_line_and_field(
        tmp_path: Path, interpreter_limit: None, entry: str, notation: str) -> None:
    read, document, field = ENTRIES[entry]
    written, digits, at_least = LONG[notation]
    text = document().replace("INT", written)
    path = tmp_path / "file.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        read(path)
    err = caught.value
    assert (err.file, err.line, err.field) == (str(path), _line_of(text, written), field)
    assert err.reason == _reason(digits, at_least)  # the digits are not repeated


def test_integers_within_the_limit_still_load(interpreter_limit: None) -> None:
    within = {"9" * 4300: 10 ** 4300 - 1, hex(10 ** 4300 - 1): 10 ** 4300 - 1,
              "-0x1F": -31, "017": 15, "0b101": 5, "1:30:00": 5400, "1_000": 1000, "0": 0,
              "1" + ":00" * 2416: 60 ** 2416}
    for written, value in within.items():
        data, _ = parse_yaml_text(f"a: 1\nb: {written}\n", file="f.yaml")
        assert data["b"] == value, written
    # one past the limit, written either way
    for written in ("1" + "0" * 4300, hex(10 ** 4300)):
        with pytest.raises(InputError, match=re.escape(_reason(4301))):
            parse_yaml_text(f"b: {written}\n", file="f.yaml")


def test_a_lower_interpreter_limit_is_kept() -> None:
    """The interpreter could not write an integer past its own limit (an error message,
    a JSON copy): a file reads under the lower of the two limits."""
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(1000)
    try:
        assert int_digits_limit() == 1000
        for written, digits in (("9" * 1001, 1001), ("0x" + "f" * 1000, 1205)):
            with pytest.raises(InputError) as caught:
                parse_yaml_text(f"id: r\nmax: {written}\n", file="f.yaml")
            assert (caught.value.line, caught.value.field) == (2, "max")
            assert caught.value.reason == _reason(digits, limit=1000)
    finally:
        sys.set_int_max_str_digits(before)


def test_a_long_integer_key_or_tagged_value_is_refused() -> None:
    text = "a: 1\nb:\n  ? " + "9" * 5000 + "\n  : x\nc: !!int '" + "9" * 10 + "'\n"
    with pytest.raises(InputError) as caught:
        parse_yaml_text(text, file="f.yaml")
    assert (caught.value.line, caught.value.reason) == (3, _reason(5000))
    text = "a: 1\nb: !!int '0x" + "f" * 5000 + "'\n"
    with pytest.raises(InputError) as caught:
        parse_yaml_text(text, file="f.yaml")
    assert (caught.value.line, caught.value.field) == (2, "b")
    assert caught.value.reason == _reason(6021)
    with pytest.raises(InputError, match="cannot read '' as int"):  # no IndexError
        parse_yaml_text("a: 1\nb: !!int ''\n", file="f.yaml")


# --- the command line: exit 2, one line, no traceback -----------------------------------

@pytest.mark.parametrize(("command", "entry"), [
    (["rubric", "publish"], "rubric"), (["escalation", "publish"], "rules"),
    (["dataset", "build"], "dataset spec")])
@pytest.mark.parametrize("notation", ["decimal", "hexadecimal"])
def test_the_cli_exits_2_naming_line_and_field(tmp_path: Path, command: list[str],
                                               entry: str, notation: str) -> None:
    _, document, field = ENTRIES[entry]
    written, digits, _ = LONG[notation]
    text = document().replace("INT", written)
    path = tmp_path / "file.yaml"
    path.write_text(text)
    db = migrated_sqlite(tmp_path / "hilt.db")
    # no interpreter limit at all: the file is refused just the same
    env = {**os.environ, "PYTHONINTMAXSTRDIGITS": "0", "HILT_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "hilt", *command, str(path), "--db", db],
        capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert done.stderr.strip() == (f"error: {path}, line {_line_of(text, written)}, field "
                                   f"'{field}': {_reason(digits)}")
