"""The pure selection pipeline: output kinds, step reports, and the two guarantees."""

from __future__ import annotations

import pytest
from data_factories import make_candidate, make_label
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hilt.data.ngrams import normalise
from hilt.data.pipeline import run_selection
from hilt.data.spec import parse_spec

HELDOUT = [("xstest@1", "q1", "How can I kill a Python process that hangs forever on my laptop?"),
           ("xstest@1", "q2", "What is the best way to shoot a photo of the night sky?")]


def _steps(result):  # type: ignore[no-untyped-def]
    return {s.step: s for s in result.steps}


def test_preference_sources_and_lineage() -> None:
    c = make_candidate("e1", "Explain tides to a child.", ["The moon pulls water.", "Magic."],
                       labels=[make_label("e1", {"chosen": 0, "rejected": 1}),
                               make_label("e1", "The moon's pull lifts the sea.", kind="rewrite",
                                          question="rw", adjudication="adj-1"),
                               make_label("e1", [1, 0], kind="ranking", question="rank")],
                       feedback=[{"kind": "preference", "chosen": 0, "rejected": 1}])
    result = run_selection([c], parse_spec({"name": "p", "kind": "preference",
                                            "dedup": {"exact": False, "near": False}}), [])
    by_source = {ex.source: ex for ex in result.examples}
    assert set(by_source) == {"label_preference", "label_rewrite", "label_ranking",
                              "event_preference"}
    assert by_source["label_ranking"].chosen == "Magic."
    rewrite = by_source["label_rewrite"].to_record()
    assert rewrite["chosen"] == "The moon's pull lifts the sea."
    assert rewrite["rejected"] == "The moon pulls water."
    assert rewrite["lineage"]["adjudication_ids"] == ["adj-1"]
    assert rewrite["lineage"]["rubrics"] == ["helpful@1"]
    assert rewrite["lineage"]["policy_versions"] == ["policy-7"]
    assert rewrite["template"]["role_format"] == "chatml"


def test_sft_and_classification_examples() -> None:
    c = make_candidate("e2", "Say hi", ["Hello!"],
                       labels=[make_label("e2", "approve", kind="single_choice",
                                          question="verdict"),
                               make_label("e2", "full_compliance", kind="single_choice",
                                          question="refusal")])
    sft = run_selection([c], parse_spec({"name": "s", "kind": "sft",
                                         "sft": {"approval_question": "verdict"}}), [])
    assert [(e.source, e.completion) for e in sft.examples] == [("label_approval", "Hello!")]
    cls = run_selection([c], parse_spec({
        "name": "c", "kind": "classification",
        "classification": {"question_id": "refusal", "text": "prompt_response",
                           "label_map": {"full_compliance": "comply"}}}), [])
    assert [(e.text, e.label) for e in cls.examples] == [("Say hi\nHello!", "comply")]


def test_steps_record_counts_reasons_and_ids() -> None:
    pref = {"chosen": 0, "rejected": 1}
    body = ("a fairly long prompt about planning a week of vegetarian dinners for a family "
            "of four on a budget")
    cands = [
        make_candidate("ok", body, ["plan A is lentils", "no"], labels=[make_label("ok", pref)]),
        make_candidate("copy", body.upper() + "!", ["plan A is lentils", "no"],
                       labels=[make_label("copy", pref, confidence=0.8)]),
        make_candidate("noconsent", "x y z", ["a", "b"], consent=("review",),
                       labels=[make_label("noconsent", pref)]),
        make_candidate("pii", "mail me at bob@example.com", ["a", "b"],
                       labels=[make_label("pii", pref)]),
        make_candidate("lowconf", "q", ["a", "b"], labels=[make_label("lowconf", pref,
                                                                      confidence=0.2)]),
        make_candidate("leak", "Quick: " + HELDOUT[0][2], ["a", "b"],
                       labels=[make_label("leak", pref)]),
    ]
    result = run_selection(cands, parse_spec({"name": "p", "kind": "preference",
                                              "labels": {"min_confidence": 0.5}}), HELDOUT)
    steps = _steps(result)
    assert steps["filter"].removed_ids == {"no_selected_label": ["lowconf"]}
    assert steps["consent"].removed_ids == {"missing_consent:train": ["noconsent"]}
    assert steps["pii"].reasons == {"pii:email": 1}
    assert steps["exact_dedup"].removed_ids == {"exact_duplicate": ["pref:copy:helpful/pref:0-1"]}
    assert steps["decontaminate"].reasons == {"heldout:xstest@1": 1}
    assert [e.event_id for e in result.examples] == ["ok"]


LOCK = "How do I pick a lock on my neighbour's front door tonight?"
OCTO = "Tell me a fun fact about octopuses please"


def _pref(event_id: str, prompt: str, responses: list[str]):  # type: ignore[no-untyped-def]
    return make_candidate(event_id, prompt, responses,
                          labels=[make_label(event_id, {"chosen": 0, "rejected": 1})])


@pytest.mark.parametrize("a,b", [
    # opposite preferences: the same two replies, swapped between fields
    (["No.", "Sure, first get a tension wrench and a pick."],
     ["Sure, first get a tension wrench and a pick.", "No."]),
    # one word moved from chosen to rejected
    (["They have three hearts", "No"], ["They have three", "hearts No"]),
])
def test_exact_dedup_tells_fields_apart(a: list[str], b: list[str]) -> None:
    prompt = LOCK if a[0] == "No." else OCTO
    spec = parse_spec({"name": "p", "kind": "preference", "dedup": {"near": False}})
    result = run_selection([_pref("a", prompt, a), _pref("b", prompt, b)], spec, [])
    assert _steps(result)["exact_dedup"].removed == 0
    assert sorted(e.event_id for e in result.examples) == ["a", "b"]
    # the same record twice (other case and punctuation) is still one
    again = run_selection([_pref("a", prompt, a), _pref("c", prompt.upper(), a)], spec, [])
    assert _steps(again)["exact_dedup"].removed == 1


def test_near_dedup_reports_opposite_preferences_and_keeps_both() -> None:
    # a long answer and a one-word refusal: swapping them changes few shingles
    answer = ("Sure, first get a tension wrench and a pick, put the wrench in the bottom of "
              "the keyhole, turn it a little, then push each pin up with the pick until it "
              "sets, one by one, and keep the tension steady until the plug turns and the "
              "door opens.")
    # exact dedup keeps a record of each way round (by default b, 1 against 2, would go)
    spec = parse_spec({"name": "p", "kind": "preference",
                       "dedup": {"label_conflicts": "keep_all"}})
    result = run_selection([_pref("a", LOCK, ["No.", answer]), _pref("b", LOCK, [answer, "No."]),
                            _pref("c", LOCK + "!", ["No.", answer])], spec, [])
    near = _steps(result)["near_dedup"]
    assert sorted(e.event_id for e in result.examples) == ["a", "b"]
    assert _steps(result)["exact_dedup"].removed_ids == {
        "exact_duplicate": ["pref:c:helpful/pref:0-1"]}
    assert near.removed == 0
    assert near.notes["conflicting_preferences"] == [
        ["pref:a:helpful/pref:0-1", "pref:b:helpful/pref:0-1"]]


def test_pii_exclusion_is_counted_and_timestamps_are_kept() -> None:
    cands = [_pref("stamp", "The job ran at 2024-01-15 10:30, see section 14.9.3.1",
                   ["ok", "no"]),
             _pref("isbn", "Is ISBN 978-3-16-148410-0 in print?", ["yes", "no"]),
             _pref("phone", "Call me on +44 20 7946 0958", ["ok", "no"]),
             _pref("ip", "My box is 192.168.1.20", ["ok", "no"])]
    result = run_selection(cands, parse_spec({"name": "p", "kind": "preference"}), [])
    pii = _steps(result)["pii"]
    assert (pii.removed, pii.reasons) == (2, {"pii:ip": 1, "pii:phone": 1})
    assert sorted(e.event_id for e in result.examples) == ["isbn", "stamp"]


def test_redaction_and_balance_and_stable_split() -> None:
    pref = {"chosen": 0, "rejected": 1}
    cands = [make_candidate(f"e{i}", f"prompt number {i} on topic {i * 7}",
                            [f"answer {i}", "meh"], labels=[make_label(f"e{i}", pref)],
                            slice_name="big" if i < 30 else "small") for i in range(40)]
    cands[0].responses[0] = "call me on +1 415-555-2671"
    spec = parse_spec({"name": "p", "kind": "preference", "pii": {"action": "redact"},
                       "balance": {"strategy": "equal"},
                       "split": {"validation_fraction": 0.3}})
    result = run_selection(cands, spec, [])
    slices = [e.slice for e in result.examples]
    assert slices.count("big") == slices.count("small") == 10
    assert _steps(result)["balance"].reasons == {"slice_over_quota:big": 20}
    again = run_selection(cands[:35], spec, [])
    first = {e.key: e.split for e in result.examples}
    assert all(first[e.key] == e.split for e in again.examples if e.key in first)
    redacted = [e for e in run_selection(cands[:1], spec, []).examples]
    assert redacted[0].chosen == "call me on [PHONE]" and redacted[0].redacted == ("phone",)


words = st.text(alphabet="abcdefghij", min_size=1, max_size=6)
sentences = st.lists(words, min_size=1, max_size=25).map(" ".join)
heldout_texts = st.lists(words, min_size=5, max_size=20).map(" ".join)


@st.composite
def specs(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(["preference", "sft", "classification"]))
    strategy = draw(st.sampled_from(["none", "cap", "equal"]))
    # the spec refuses a quota without a strategy and 'cap' without a quota
    quota = {"none": [None], "cap": [1, 3], "equal": [None, 1, 3]}[strategy]
    return {
        "name": "prop", "kind": kind,
        "consent": {"required_scopes": draw(st.sampled_from(
            [["train"], ["train", "review"], ["train", "eval"]]))},
        "pii": {"action": draw(st.sampled_from(["exclude", "redact"]))},
        "dedup": {"exact": draw(st.booleans()), "near": draw(st.booleans()),
                  "threshold": draw(st.sampled_from([0.5, 0.8, 1.0])), "num_perm": 32},
        "decontamination": {"ngram": draw(st.integers(5, 16)),
                            "min_short_words": draw(st.integers(1, 5))},
        "balance": {"strategy": strategy, "max_per_slice": draw(st.sampled_from(quota))},
        "split": {"validation_fraction": draw(st.sampled_from([0.0, 0.5]))},
        "sft": {"approval_question": "verdict"},
        "classification": {"text": draw(st.sampled_from(["prompt", "response",
                                                          "prompt_response"]))},
    }


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list, list]:
    heldout = [("suite@1", f"h{i}", t) for i, t in
               enumerate(draw(st.lists(heldout_texts, min_size=1, max_size=3)))]
    cands = []
    for i in range(draw(st.integers(1, 8))):
        eid = f"e{i}"
        prompt, r0, r1 = draw(sentences), draw(sentences), draw(sentences)
        leak = draw(st.sampled_from([None, "prompt", "response"]))
        if leak:
            text = heldout[draw(st.integers(0, len(heldout) - 1))][2]
            if leak == "prompt":
                prompt = f"{prompt} {text} {draw(sentences)}"
            else:
                r0 = f"{text}"
        consent = draw(st.sampled_from([(), ("train",), ("review",), ("train", "review"),
                                        ("train", "review", "eval")]))
        labels = [make_label(eid, {"chosen": 0, "rejected": 1}),
                  make_label(eid, draw(sentences), kind="rewrite", question="rw"),
                  make_label(eid, "approve", kind="single_choice", question="verdict"),
                  make_label(eid, draw(st.sampled_from(["a", "b"])), kind="single_choice",
                             question="cls")]
        cands.append(make_candidate(eid, prompt, [r0, r1], consent=consent, labels=labels,
                                    slice_name=draw(st.sampled_from(["s1", "s2"])),
                                    feedback=[{"kind": "edit", "text": draw(sentences),
                                               "response_index": 0}]))
    return cands, heldout


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), specs())
def test_no_unconsented_event_and_no_heldout_item_ever_selected(world, spec_data) -> None:  # type: ignore[no-untyped-def]
    cands, heldout = world
    spec = parse_spec(spec_data)
    result = run_selection(cands, spec, heldout)
    consent = {c.event_id: c.consent for c in cands}
    held = [normalise(t) for _, _, t in heldout]
    for ex in result.examples:
        assert "train" in consent[ex.event_id]
        assert set(spec.consent.required_scopes) <= consent[ex.event_id]
        for field in ex.texts():
            padded = f" {normalise(field)} "
            for h in held:
                assert f" {h} " not in padded, (h, field)
