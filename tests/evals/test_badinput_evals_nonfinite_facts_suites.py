"""NaN and infinities in a facts file's free-form fields and in a suite's metadata are
refused naming the file, the line and the field: never an unlocated ValueError, never a
null in the decision record, never a traceback from the suite registry."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.evals.facts import facts_from_dict, load_facts
from hilt.evals.files import SuiteItem
from hilt.evals.registry import register_suite
from hilt.store.db import transaction
from hilt.store.tables.gate import EvalSuiteRow


@pytest.mark.parametrize("text,line,field", [
    ("versions:\n  rubric: harm@2\n  decoder_settings: {temperature: .nan}\n", 3,
     "versions.decoder_settings.temperature"),
    ("versions:\n  reward_model:\n    id: rm-1\n    scale: [1.0, -.inf]\n", 4,
     "versions.reward_model.scale.1"),
    ("records:\n  training:\n    - id: t1\n      objective_terms: {sft: .inf}\n", 4,
     "records.training.0.objective_terms.sft"),
    ("records:\n  dataset_versions:\n    - id: d1\n      filters:\n"
     "        min_score: .NaN\n", 5, "records.dataset_versions.0.filters.min_score"),
])
def test_a_facts_number_that_is_not_finite_is_refused_with_its_line(
        tmp_path: Path, text: str, line: int, field: str) -> None:
    path = tmp_path / "facts.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="must be a finite number") as err:
        load_facts(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), line, field)


def test_finite_free_form_facts_are_kept() -> None:
    facts = facts_from_dict({"versions": {"decoder_settings": {"temperature": 0.7}}})
    assert facts["versions"]["decoder_settings"] == {"temperature": 0.7}
    with pytest.raises(InputError) as err:
        facts_from_dict({"versions": {"decoder_settings": {"t": math.inf}}})
    assert err.value.field == "versions.decoder_settings.t"


def test_registering_a_suite_with_nan_metadata_names_file_line_and_field(
        engine: Engine) -> None:
    items = [SuiteItem("a", "p1", "s", "comply", 1, {"score": 0.5}),
             SuiteItem("b", "p2", "s", "refuse", 2, {"extra": {"scores": [1.0, math.nan]}})]
    with pytest.raises(InputError, match="finite") as err, transaction(engine) as session:
        register_suite(session, items, name="sn", version="1", actor="ana",
                       file="suite.jsonl")
    assert (err.value.file, err.value.line, err.value.field) == (
        "suite.jsonl", 2, "extra.scores[1]")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(EvalSuiteRow)).scalar() == 0
