"""A policy file that is not a mapping, and a version YAML reads as a number, are
refused with what to write instead (not a validator's type names)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.gate.policy import default_policy, load_policy, policy_from_dict


@pytest.mark.parametrize(("text", "shape", "line"), [
    ("", "is empty", None), ("# nothing yet\n", "is empty", None),
    ("- id: p\n", "holds a list", 1), ("just text\n", "holds a str", 1)])
def test_a_policy_file_that_is_no_mapping_says_so(tmp_path: Path, text: str, shape: str,
                                                  line: int | None) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_policy(path)
    assert caught.value.file == str(path) and caught.value.line == line
    assert f"a policy is a mapping of id, version, behaviours, …; this file {shape}" \
        in caught.value.reason
    assert "GatePolicy" not in str(caught.value)


@pytest.mark.parametrize("version", ["1", "1.10", "2.0"])
def test_an_unquoted_version_is_refused_with_the_quoted_form(tmp_path: Path,
                                                             version: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"id: p\nversion: {version}\nbehaviours: []\n")
    with pytest.raises(InputError) as caught:
        load_policy(path)
    assert (caught.value.line, caught.value.field) == (2, "version")
    assert "must be text: quote it" in caught.value.reason


def test_a_quoted_version_loads() -> None:
    data = default_policy().as_dict() | {"version": "1.10"}
    assert policy_from_dict(data).version == "1.10"
