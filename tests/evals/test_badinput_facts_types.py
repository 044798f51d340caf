"""A facts file value of the wrong type is refused, naming file, line and field, rather
than recorded as something the file did not say (`records: true` as 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.evals.facts import load_facts


@pytest.mark.parametrize(("text", "line", "field"), [
    ("records:\n  dataset_versions:\n    - id: d\n      records: true\n", 4,
     "records.dataset_versions.0.records"),
    ('records:\n  dataset_versions:\n    - id: d\n      records: "12"\n', 4,
     "records.dataset_versions.0.records"),
    ("records:\n  dataset_versions:\n    - id: d\n      records: -5\n", 4,
     "records.dataset_versions.0.records"),
    ("records:\n  training:\n    - id: t\n      objective_terms: {sft: true}\n", 4,
     "records.training.0.objective_terms.sft"),
    ('records:\n  training:\n    - id: t\n      objective_terms: {sft: "1.0"}\n', 4,
     "records.training.0.objective_terms.sft"),
])
def test_a_value_of_the_wrong_type_is_refused(tmp_path: Path, text: str, line: int,
                                              field: str) -> None:
    path = tmp_path / "facts.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_facts(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), line, field)


def test_values_of_the_right_type_are_kept_as_given(tmp_path: Path) -> None:
    path = tmp_path / "facts.yaml"
    path.write_text("records:\n  dataset_versions:\n    - id: d\n      records: 0\n"
                    "  training:\n    - id: t\n      objective_terms: {sft: 1, kl: 0.05}\n",
                    encoding="utf-8")
    records = load_facts(path)["records"]
    assert records["dataset_versions"] == [{"id": "d", "records": 0}]
    assert records["training"] == [{"id": "t", "objective_terms": {"sft": 1.0, "kl": 0.05}}]
