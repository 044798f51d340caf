"""A rubric revision that renames an option: every old label of it reads as changed
(the identity mapping has nowhere to go), so the row is flagged, and the reason says
that the old option is not one of the new version's and that a mapping resolves it."""

from __future__ import annotations

from hilt.quality.drift.transition import transition_matrix

OLD = ["safe", "borderline", "harmful"]
NEW = ["safe", "unclear", "harmful"]
PAIRS = ([("safe", "safe")] * 15 + [("borderline", "unclear")] * 15
         + [("harmful", "harmful")] * 15)


def test_a_renamed_option_is_flagged_with_the_mapping_as_the_way_out() -> None:
    matrix = transition_matrix(PAIRS, old_categories=OLD, new_categories=NEW)
    assert matrix.status == "incompatible" and matrix.flagged == ["borderline"]
    assert "old label(s) ['borderline'] are not options of the new version" in matrix.reason
    assert "hilt drift decide --kind mapping" in matrix.reason
    mapped = transition_matrix(PAIRS, old_categories=OLD, new_categories=NEW,
                               mapping={"borderline": "unclear"})
    assert mapped.status == "compatible" and mapped.flagged == []


def test_a_moved_label_that_still_exists_gets_no_rename_advice() -> None:
    moved = [(o, "harmful" if o == "borderline" else n) for o, n in PAIRS]
    matrix = transition_matrix(moved, old_categories=OLD, new_categories=OLD)
    assert matrix.status == "incompatible" and matrix.flagged == ["borderline"]
    assert "not options of the new version" not in matrix.reason
