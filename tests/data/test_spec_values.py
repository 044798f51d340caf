"""Selection specs: a YAML value of a valid form that is no real value (a date that
does not exist) and an SFT threshold that would be ignored are refused, naming the file,
line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilt.data.spec import load_spec
from hilt.errors import InputError

HEAD = "name: x\nkind: sft\n"


def _refused(tmp_path: Path, text: str) -> InputError:
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + text)
    with pytest.raises(InputError) as info:
        load_spec(path)
    assert info.value.file == str(path)
    return info.value


@pytest.mark.parametrize("value", ["2025-02-30T00:00:00Z", "2025-13-01"])
def test_a_date_that_does_not_exist_names_its_line_and_field(tmp_path: Path,
                                                             value: str) -> None:
    err = _refused(tmp_path, f"labels:\n  since: {value}\n")
    assert (err.line, err.field) == (4, "labels.since")
    assert value in str(err)


def test_min_scale_without_an_approval_question_is_refused(tmp_path: Path) -> None:
    err = _refused(tmp_path, "sft:\n  min_scale: 4\n")
    assert (err.line, err.field) == (4, "sft.min_scale")
    assert "approval_question" in str(err)


def test_min_scale_with_an_approval_question_is_read(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + "sft:\n  approval_question: helpfulness\n  min_scale: 4\n")
    assert load_spec(path).sft.min_scale == 4
