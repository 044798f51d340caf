"""The markdown subset and the form translation (pure functions)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hilt.review.rubric_spec import clean_answers, parse_rubric
from hilt.review.rubrics import load_rubric_file
from hilt.web.forms import FormData, FormProblem, answers_from_form, field_views
from hilt.web.markup import render_markdown
from tests.web.seed import HARM

ALLOWED_TAGS = {"p", "br", "pre", "code", "strong", "em", "ul", "ol", "li"}


def test_markdown_subset() -> None:
    html = str(render_markdown("Hi **bold** and *it*\n\n```\nx < 1\n```\n- a `b*c*`\n1. n"))
    assert html == ("<p>Hi <strong>bold</strong> and <em>it</em></p>"
                    "<pre><code>x &lt; 1</code></pre><ul><li>a <code>b*c*</code></li></ul>"
                    "<ol><li>n</li></ol>")


def test_payloads_stay_text() -> None:
    payload = ('<script>alert(1)</script><img src=x onerror="alert(2)">'
               "[x](javascript:alert(3)) ![i](http://example.com/p.png) <a href='y'>")
    html = str(render_markdown(payload))
    assert "<script" not in html and "<img" not in html and "<a " not in html
    assert "&lt;script&gt;" in html and "onerror=&quot;alert(2)&quot;" in html
    assert "javascript:alert(3)" in html  # shown as text, never a link


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_any_text_produces_only_allowed_tags_without_attributes(text: str) -> None:
    html = str(render_markdown(text))
    for tag in re.findall(r"<(/?)([a-zA-Z][^\s>/]*)([^>]*)>", html):
        assert tag[1] in ALLOWED_TAGS and tag[2] == "", tag
    assert "<" not in re.sub("</?(?:" + "|".join(ALLOWED_TAGS) + ")>", "", html)


def test_form_to_answers_is_accepted_by_the_stage() -> None:
    spec = load_rubric_file(HARM)
    fields = field_views(spec, 1)
    form = FormData([("q.verdict", "borderline"), ("q.refusal", "complies"),
                     ("q.helpfulness", "3"), ("q.issues.present", "1"),
                     ("q.issues", "tone"), ("q.issues", "privacy"), ("q.notes", "  ")])
    answers = answers_from_form(fields, form, 1)
    assert answers == {"verdict": "borderline", "refusal": "complies", "helpfulness": 3,
                       "issues": ["tone", "privacy"]}
    assert clean_answers(spec, answers, 1)["issues"] == ["privacy", "tone"]


def test_preference_and_ranking_fields() -> None:
    spec = parse_rubric({"id": "pw", "title": "t", "questions": [
        {"id": "better", "kind": "preference", "prompt": "Which is better?"},
        {"id": "order", "kind": "ranking", "prompt": "Order them"}]})
    fields = field_views(spec, 3)
    assert [c.label for c in fields[0].choices][:2] == ["A better than B", "A better than C"]
    answers = answers_from_form(fields, FormData([("q.better", "2>0"),
                                                  ("q.order", "c, a b")]), 3)
    assert answers == {"better": {"chosen": 2, "rejected": 0}, "order": [2, 0, 1]}
    assert clean_answers(spec, answers, 3) == answers
    with pytest.raises(FormProblem):
        answers_from_form(fields, FormData([("q.order", "A Z")]), 3)


@pytest.mark.parametrize("index", ["0.9", "1.0", "nan", "1e999", "-1", "+1", "1_0", "٣",
                                   " ", "9" * 5000])
def test_response_indices_must_be_plain_digits(index: str) -> None:
    spec = parse_rubric({"id": "pw", "title": "t", "questions": [
        {"id": "better", "kind": "preference", "prompt": "Which is better?"}]})
    radio, = field_views(spec, 3)
    select, = field_views(spec, 5)  # 20 pairs: two drop-downs instead of radios
    assert (radio.widget, select.widget) == ("radio", "pair_select")
    for fields, form in (
            ([radio], FormData([("q.better", f"{index}>2")])),
            ([radio], FormData([("q.better", f"2>{index}")])),
            ([select], FormData([("q.better.chosen", index), ("q.better.rejected", "2")])),
            ([select], FormData([("q.better.chosen", "2"), ("q.better.rejected", index)]))):
        with pytest.raises(FormProblem, match="names no response") as err:
            answers_from_form(fields, form, 5)
        assert err.value.question_id == "better"
    answers = answers_from_form([select], FormData([("q.better.chosen", "4"),
                                                    ("q.better.rejected", " 0 ")]), 5)
    assert answers == {"better": {"chosen": 4, "rejected": 0}}


def test_fractional_and_huge_scales() -> None:
    from hilt.errors import InputError

    spec = parse_rubric({"id": "s", "title": "t", "questions": [
        {"id": "q", "kind": "scale", "prompt": "p", "min": 0, "max": 0.7, "step": 0.1,
         "anchors": {0.3: "middling"}},
        {"id": "big", "kind": "scale", "prompt": "p", "min": 0, "max": 1e12}]})
    fine, big = field_views(spec, 1)
    values = [c.value for c in fine.choices]
    # each point is the number the rubric means, the top one included
    assert values == ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
    assert [c.description for c in fine.choices if c.value == "0.3"] == ["middling"]
    for value in ("0.3", "0.7"):
        answers = answers_from_form([fine], FormData([("q.q", value)]), 1)
        assert clean_answers(spec, {**answers, "big": 5}, 1)["q"] == float(value)
    assert big.widget == "number"  # counted first: never a list of 10^12 points
    with pytest.raises(InputError, match="anchor key"):
        parse_rubric({"id": "s", "title": "t", "questions": [
            {"id": "q", "kind": "scale", "prompt": "p", "min": 0, "max": 3,
             "anchors": {None: "x"}}]})


def test_a_disputed_multi_choice_can_be_decided_as_none() -> None:
    spec = load_rubric_file(HARM)
    required = field_views(spec, 1, required_ids={"issues"})
    answers = answers_from_form(required, FormData([("q.issues.present", "1")]), 1)
    assert answers == {"issues": []}
