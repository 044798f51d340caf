"""The examples step names the label filter that left a candidate without examples."""

from __future__ import annotations

from data_factories import make_candidate, make_label

from hilt.data.pipeline import run_selection
from hilt.data.spec import parse_spec

SPEC = {"name": "c", "kind": "classification",
        "labels": {"provenance": ["unanimous", "majority", "adjudicated"],
                   "min_confidence": 0.5},
        "classification": {"question_id": "refusal", "text": "response",
                           "label_map": {"complies": "comply"}},
        "dedup": {"exact": False, "near": False}}


def _candidate(event_id: str, provenance: str, confidence: float):  # type: ignore[no-untyped-def]
    # a selected label of another question keeps the candidate past the filter step
    return make_candidate(event_id, f"prompt {event_id}", [f"response {event_id}"], labels=[
        make_label(event_id, "ok", kind="single_choice", question="verdict",
                   provenance="unanimous"),
        make_label(event_id, "complies", kind="single_choice", question="refusal",
                   provenance=provenance, confidence=confidence)])


def test_examples_step_names_the_label_filter_that_left_a_label_out() -> None:
    cands = [_candidate("kept", "unanimous", 0.9),
             _candidate("by_model", "model_aggregated", 0.9),
             _candidate("unsure", "majority", 0.2),
             _candidate("both", "model_aggregated", 0.2),
             make_candidate("nothing", "p", ["r"], labels=[
                 make_label("nothing", "ok", kind="single_choice", question="verdict",
                            provenance="unanimous")])]
    result = run_selection(cands, parse_spec(SPEC), [])
    (step,) = [s for s in result.steps if s.step == "examples"]
    assert step.removed_ids == {"label_provenance_not_selected": ["by_model"],
                                "label_below_min_confidence": ["unsure"],
                                "label_provenance_and_confidence": ["both"],
                                "no_classification_example": ["nothing"]}
    assert [e.event_id for e in result.examples] == ["kept"]
