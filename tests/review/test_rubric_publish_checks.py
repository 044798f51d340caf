"""Checks a rubric document must pass to be published (stored versions still load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.review.rubric_spec import RubricSpec
from hilt.review.rubrics import load_rubric_file

HEAD = "id: r\ntitle: t\nquestions:\n"
SCALE = "  - id: s\n    kind: scale\n    prompt: how much\n"


def _load(tmp_path: Path, body: str) -> RubricSpec:
    path = tmp_path / "r.yaml"
    path.write_text(HEAD + body)
    return load_rubric_file(path)


def test_a_scale_whose_max_is_not_a_point_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        _load(tmp_path, SCALE + "    min: 0\n    max: 1\n    step: 0.3\n")
    assert (err.value.line, err.value.field) == (8, "questions.0.max")
    assert "not on the scale" in err.value.reason
    spec = _load(tmp_path, SCALE + "    min: 0\n    max: 0.9\n    step: 0.3\n")
    assert spec.questions[0].check_answer(0.9, 1) == 0.9
    # a version stored before the check still loads
    stored = {"id": "r", "title": "t", "questions": [
        {"id": "s", "kind": "scale", "prompt": "p", "min": 0, "max": 1, "step": 0.3}]}
    assert RubricSpec.model_validate(stored).questions[0].max == 1


@pytest.mark.parametrize(("text", "field"), [
    ("    min: 0\n    max: 4\n    step: yes\n", "questions.0.step"),
    ("    min: no\n    max: 4\n", "questions.0.min"),
    ("    min: 0\n    max: 4\n    required: 1\n", "questions.0.required"),
])
def test_booleans_are_not_numbers_nor_numbers_booleans(tmp_path: Path, text: str,
                                                       field: str) -> None:
    with pytest.raises(InputError) as err:
        _load(tmp_path, SCALE + text)
    assert err.value.field == field and err.value.line is not None


def test_exponents_without_a_sign_still_read_as_numbers(tmp_path: Path) -> None:
    # PyYAML reads 1e3 as text; the rubric takes it as the number it means
    spec = _load(tmp_path, SCALE + "    min: 0\n    max: 1e3\n    step: 1e2\n")
    assert (spec.questions[0].max, spec.questions[0].step) == (1000.0, 100.0)


def test_a_repeated_question_id_names_the_id_and_the_repeat(tmp_path: Path) -> None:
    body = ("  - id: verdict\n    kind: free_text\n    prompt: a\n"
            "  - id: other\n    kind: free_text\n    prompt: b\n"
            "  - id: verdict\n    kind: free_text\n    prompt: c\n")
    with pytest.raises(InputError) as err:
        _load(tmp_path, body)
    assert (err.value.line, err.value.field) == (10, "questions.2.id")
    assert "'verdict'" in err.value.reason and "question 0" in err.value.reason
