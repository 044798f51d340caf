"""A scale's number of points must be a finite number, not only its bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.review.rubric_spec import Question, parse_rubric
from hilt.review.rubrics import load_rubric_file
from hilt.web.forms import field_view


@pytest.mark.parametrize(("lo", "hi", "step"), [
    ("-1.0e308", "1.0e308", "1"),
    ("0", "1.0e300", "1.0e-300"),
    ("-1.7e308", "1.7e308", "100"),
])
def test_a_scale_wider_than_a_float_is_refused_naming_file_line_and_field(
        tmp_path: Path, lo: str, hi: str, step: str) -> None:
    path = tmp_path / "wide.yaml"
    path.write_text("id: wide\ntitle: t\nquestions:\n  - id: ok\n    kind: free_text\n"
                    "    prompt: p\n  - id: s\n    kind: scale\n    prompt: how much\n"
                    f"    min: {lo}\n    max: {hi}\n    step: {step}\n")
    with pytest.raises(InputError) as err:
        load_rubric_file(path)
    assert err.value.file == str(path) and err.value.line == 7
    assert err.value.field == "questions.1" and "too many steps" in err.value.reason


def test_wide_but_finite_scales_still_publish() -> None:
    spec = parse_rubric({"id": "s", "title": "t", "questions": [
        {"id": "q", "kind": "scale", "prompt": "p", "min": -1e300, "max": 1e300}]})
    assert spec.questions[0].max == 1e300


def test_a_stored_scale_with_an_infinite_span_is_drawn_as_a_number_field() -> None:
    # a rubric published before its span was checked is drawn, not a server error
    q = Question.model_construct(id="s", kind="scale", prompt="p", required=True,
                                 options=[], min=-1e308, max=1e308, step=1.0, anchors={})
    view = field_view(q, 1, 1)
    assert view is not None and view.widget == "number" and view.choices == []
