"""A facts file that lists one dataset version, training run or suite twice is refused
naming the second entry: the gate's lineage rules and the contract card would read one
of two descriptions of the same thing."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.evals.facts import load_facts

LINEAGE = """\
lineage:
  status: known
  dataset_versions:
    - id: a
      consented: true
    - id: b
    - id: a
      consented: false
"""


def _refused(tmp_path: Path, text: str) -> InputError:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_facts(path)
    assert caught.value.file == str(path)
    return caught.value


def test_a_dataset_version_listed_twice_in_the_lineage_is_refused(tmp_path: Path) -> None:
    error = _refused(tmp_path, LINEAGE)
    assert (error.line, error.field) == (7, "lineage.dataset_versions.2.id")
    assert "id 'a' is listed twice (entries 0 and 2)" in error.reason


@pytest.mark.parametrize(("text", "line", "field"), [
    ("records:\n  training:\n    - id: t\n    - id: t\n", 4, "records.training.1.id"),
    ("records:\n  dataset_versions:\n    - id: d\n    - id: d\n", 4,
     "records.dataset_versions.1.id"),
    ("records:\n  suites:\n    - {id: s, version: '1'}\n    - {id: s, version: '1'}\n", 4,
     "records.suites.1.id"),
])
def test_records_listed_twice_are_refused(tmp_path: Path, text: str, line: int,
                                          field: str) -> None:
    error = _refused(tmp_path, text)
    assert (error.line, error.field) == (line, field)


def test_two_versions_of_a_suite_and_feedback_without_ids_load(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("records:\n  suites:\n    - {id: s, version: '1'}\n"
                    "    - {id: s, version: '2'}\n  feedback:\n    - {evidence: x}\n"
                    "    - {evidence: y}\n")
    facts = load_facts(path)
    assert [s["version"] for s in facts["records"]["suites"]] == ["1", "2"]
