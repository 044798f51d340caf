"""Near dedup keeps both directions of a contradicting preference, and only them: a
near-copy of the opposing pair is a duplicate of it, not a third conflict."""

from __future__ import annotations

from data_factories import make_candidate, make_label

from hilt.data.pipeline import run_selection
from hilt.data.spec import parse_spec

# A long prompt and two short replies: swapping the replies changes few shingles, so all
# three records below are near-duplicates of one another.
PROMPT = ("please tell me in a few sentences how the water cycle works on planet earth "
          "for a school project that is due tomorrow morning, covering evaporation, "
          "condensation, precipitation and collection, with one example of each stage "
          "that a ten year old would understand and remember: "
          + " ".join(f"keyword{i}" for i in range(60)))
GOOD = "Water evaporates from the sea, forms clouds and falls as rain again."
BAD = "I do not know much about that, sorry."


def _pref(event_id: str, prompt: str, chosen: int, confidence: float):  # type: ignore[no-untyped-def]
    label = make_label(event_id, {"chosen": chosen, "rejected": 1 - chosen},
                       confidence=confidence)
    return make_candidate(event_id, prompt, [GOOD, BAD], labels=[label])


def test_a_near_copy_of_the_opposing_preference_is_dropped() -> None:
    spec = parse_spec({"name": "p", "kind": "preference"})
    result = run_selection([_pref("a", PROMPT, 0, 0.99),
                            _pref("b", PROMPT + " thanks", 1, 0.9),
                            _pref("c", PROMPT + " thank you", 1, 0.8)], spec, [])
    near = next(s for s in result.steps if s.step == "near_dedup")
    assert near.notes["similar_pairs"] == 3
    assert sorted(e.event_id for e in result.examples) == ["a", "b"]
    assert near.removed_ids == {"near_duplicate": ["pref:c:helpful/pref:0-1"]}
    assert near.notes["conflicting_preferences"] == [
        ["pref:a:helpful/pref:0-1", "pref:b:helpful/pref:0-1"]]


def test_a_near_copy_in_the_first_direction_is_still_dropped() -> None:
    spec = parse_spec({"name": "p", "kind": "preference"})
    result = run_selection([_pref("a", PROMPT, 0, 0.99),
                            _pref("b", PROMPT + " thanks", 1, 0.9),
                            _pref("c", PROMPT + " thank you", 0, 0.8)], spec, [])
    near = next(s for s in result.steps if s.step == "near_dedup")
    assert sorted(e.event_id for e in result.examples) == ["a", "b"]
    assert near.removed_ids == {"near_duplicate": ["pref:c:helpful/pref:0-1"]}
