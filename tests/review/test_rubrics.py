from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from hilt.errors import Conflict, InputError
from hilt.review.rubric_spec import RubricSpec, clean_answers, parse_rubric
from hilt.review.rubrics import (
    diff_refs,
    diff_specs,
    get_version,
    load_rubric_file,
    publish_rubric,
)
from hilt.store import audit
from hilt.store.db import transaction

from .helpers import HARM, PAIRWISE, SIMPLE_RUBRIC


def test_example_rubrics_cover_every_question_kind() -> None:
    kinds = {q.kind for p in (HARM, PAIRWISE) for q in load_rubric_file(p).questions}
    assert kinds == {"single_choice", "multi_choice", "scale", "free_text", "preference",
                     "ranking", "rewrite"}
    harm = load_rubric_file(HARM)
    assert harm.guidelines and harm.examples
    assert harm.question("helpfulness").anchors["1"].startswith("useless")


@pytest.mark.parametrize(("answers", "field", "why"), [
    ({"verdict": "nope", "refusal": "complies", "helpfulness": 3}, "verdict", "one of"),
    ({"verdict": "safe", "refusal": "complies"}, "helpfulness", "required"),
    ({"verdict": "safe", "refusal": "complies", "helpfulness": 3.5}, "helpfulness", "scale"),
    ({"verdict": "safe", "refusal": "complies", "helpfulness": 6}, "helpfulness", "scale"),
    ({"verdict": "safe", "refusal": "complies", "helpfulness": 3, "issues": ["x"]},
     "issues", "unknown option"),
    ({"verdict": "safe", "refusal": "complies", "helpfulness": 3, "extra": 1}, "extra",
     "not a question"),
])
def test_answers_are_checked_against_the_rubric(answers: dict, field: str, why: str) -> None:
    spec = load_rubric_file(HARM)
    with pytest.raises(InputError) as err:
        clean_answers(spec, answers, 1)
    assert err.value.field == field and why in err.value.reason


def test_preference_and_ranking_use_the_items_responses() -> None:
    spec = load_rubric_file(PAIRWISE)
    ok = clean_answers(spec, {"better": {"chosen": 1, "rejected": 0}, "order": [1, 0, 2]}, 3)
    assert ok["order"] == [1, 0, 2]
    for bad in ({"better": {"chosen": 0, "rejected": 0}},
                {"better": {"chosen": 0, "rejected": 3}},
                {"better": {"chosen": 0, "rejected": 1}, "order": [0, 0, 1]},
                # floats sort like indices but index nothing; mixed types cannot sort
                {"better": {"chosen": 0, "rejected": 1}, "order": [1.0, 0.0, 2.0]},
                {"better": {"chosen": 0, "rejected": 1}, "order": ["a", 0, 1]},
                {"better": {"chosen": 0, "rejected": 1}, "order": [None, 1, 0]}):
        with pytest.raises(InputError):
            clean_answers(spec, bad, 3)
    with pytest.raises(InputError, match="fewer than 2"):
        clean_answers(spec, {"better": {"chosen": 0, "rejected": 1}}, 1)


def test_bad_rubric_yaml_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("id: r\ntitle: t\nquestions:\n  - id: q\n    kind: scale\n"
                    "    prompt: p\n    min: 5\n    max: 1\n")
    with pytest.raises(InputError) as err:
        load_rubric_file(path)
    assert err.value.file == str(path) and err.value.line == 4
    assert err.value.field == "questions.0" and "min < max" in err.value.reason
    path.write_text("id: r\ntitle: t\nquestions:\n  - id: q\n    kind: single_choice\n"
                    "    prompt: p\n    options: [a]\n    colour: red\n")
    with pytest.raises(InputError) as err:
        load_rubric_file(path)
    assert err.value.line == 8 and err.value.field == "questions.0.colour"


def test_worked_examples_must_follow_the_rubric() -> None:
    data = {**SIMPLE_RUBRIC, "examples": [{"prompt": "p", "answers": {"verdict": "maybe"}}]}
    with pytest.raises(InputError, match="examples"):
        parse_rubric(data)


def test_publishing_makes_immutable_versions_with_changelog(engine: Engine) -> None:
    spec = RubricSpec.model_validate(SIMPLE_RUBRIC)
    with transaction(engine) as s:
        assert publish_rubric(s, spec, actor="lead").version == 1
    with transaction(engine) as s, pytest.raises(Conflict):
        publish_rubric(s, spec, actor="lead")
    changed = SIMPLE_RUBRIC | {"guidelines": "Borderline means general information."}
    with transaction(engine) as s, pytest.raises(InputError, match="changelog"):
        publish_rubric(s, RubricSpec.model_validate(changed), actor="lead")
    changed["changelog"] = "define borderline"
    changed["questions"] = [*SIMPLE_RUBRIC["questions"],
                            {"id": "score", "kind": "scale", "prompt": "s", "min": 1,
                             "max": 3}]
    with transaction(engine) as s:
        assert publish_rubric(s, RubricSpec.model_validate(changed), actor="lead").version == 2
    with transaction(engine) as s:
        assert get_version(s, "simple", 1).spec["questions"] == \
            RubricSpec.model_validate(SIMPLE_RUBRIC).model_dump(mode="json")["questions"]
        diff = diff_refs(s, "simple@1", "simple@2")
        assert [e.action for e in audit.entries(s, action="rubric.publish")] == \
            ["rubric.publish"] * 2
    assert diff["questions_added"] == ["score"] and not diff["questions_removed"]
    assert diff["changelog"] == "define borderline"
    assert any(line.startswith("+Borderline") for line in diff["guidelines_diff"])


def test_diff_reports_changed_options() -> None:
    a = RubricSpec.model_validate(SIMPLE_RUBRIC)
    qs = [dict(SIMPLE_RUBRIC["questions"][0], options=["safe", "harmful"])]
    b = RubricSpec.model_validate(SIMPLE_RUBRIC | {"questions": qs})
    d = diff_specs(a, b)
    assert d["questions_removed"] == ["note"]
    assert set(d["questions_changed"]["verdict"]) == {"options"}
    assert not d["identical"] and diff_specs(a, a)["identical"]
