"""What a selection spec cannot show wrong on its own is checked against the published
rubrics, naming the spec's file, line and field: a rubric or rubric version with nothing
published, and a ``label_map`` key no selected question gives as a label. A scale point
in ``label_map`` matches the stored number."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_factories import make_candidate, make_label
from sqlalchemy.engine import Engine

from hilt.data.examples import candidate_examples
from hilt.data.spec import check_rubric_references, load_spec, parse_spec
from hilt.errors import InputError
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import transaction

REPO = Path(__file__).resolve().parents[2]
SPEC = """name: refusal
kind: classification
labels:
  rubric_ids: [harm]
  rubric_versions: [1]
classification:
  question_id: refusal
  text: response
  label_map:
    full_refusal: refuse
    complies: comply
"""


@pytest.fixture
def published(engine: Engine) -> Engine:
    with transaction(engine) as session:
        publish_rubric(session, load_rubric_file(REPO / "examples" / "rubrics" / "harm.yaml"),
                       actor="lead")
    return engine


def _check(engine: Engine, path: Path, text: str) -> None:
    path.write_text(text)
    with transaction(engine) as session:
        check_rubric_references(session, load_spec(path))


def test_a_spec_that_fits_the_rubric_passes(published: Engine, tmp_path: Path) -> None:
    _check(published, tmp_path / "ok.yaml", SPEC)
    _check(published, tmp_path / "scale.yaml", SPEC.replace("question_id: refusal",
                                                            "question_id: helpfulness")
           .replace("full_refusal: refuse\n    complies: comply", "'1': low\n    '5.0': high"))


@pytest.mark.parametrize("old, new, line, field, words", [
    ("    complies: comply", "    complys: comply", 11, "classification.label_map.complys",
     "'complys' is no label of question 'refusal'"),
    ("rubric_versions: [1]", "rubric_versions: [1, 99]", 5, "labels.rubric_versions.1",
     "no version 99 of 'harm' is published (published: 1)"),
    ("rubric_ids: [harm]", "rubric_ids: [harm, hram]", 4, "labels.rubric_ids.1",
     "no rubric 'hram' is published"),
])
def test_what_the_rubrics_do_not_have_is_refused(published: Engine, tmp_path: Path,
                                                 old: str, new: str, line: int, field: str,
                                                 words: str) -> None:
    path = tmp_path / "spec.yaml"
    with pytest.raises(InputError) as err:
        _check(published, path, SPEC.replace(old, new))
    assert (err.value.file, err.value.line, err.value.field) == (str(path), line, field)
    assert words in err.value.reason


def test_a_scale_key_off_the_scale_is_refused(published: Engine, tmp_path: Path) -> None:
    text = SPEC.replace("question_id: refusal", "question_id: helpfulness").replace(
        "full_refusal: refuse\n    complies: comply", "'7': high")
    with pytest.raises(InputError, match="'7' is no label") as err:
        _check(published, tmp_path / "spec.yaml", text)
    assert err.value.field == "classification.label_map.7"


def test_keys_for_event_labels_are_not_checked(published: Engine) -> None:
    """With event-level label feedback selectable, a key may be a value events carry."""
    spec = parse_spec({"name": "n", "kind": "classification",
                       "classification": {"label_map": {"from_an_event": "x"}}})
    with transaction(published) as session:
        check_rubric_references(session, spec)


def test_a_scale_point_maps_whatever_number_form_the_key_has() -> None:
    spec = parse_spec({"name": "n", "kind": "classification",
                       "classification": {"question_id": "helpfulness", "text": "response",
                                          "label_map": {"4": "good", "1": "bad"}}})
    labels = [make_label("e1", 4.0, kind="scale", question="helpfulness"),
              make_label("e1", 1.0, kind="scale", question="helpfulness", rubric="other")]
    found = candidate_examples(make_candidate("e1", "p", ["r"], labels=labels), spec)
    assert sorted(ex.label for ex in found) == ["bad", "good"]
