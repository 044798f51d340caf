"""The quality snapshot's agreement interval (``hilt_agreement``) counts items, never
collapses to [1, 1], and never treats the reviewer pairs of one item as independent."""

from __future__ import annotations

import pytest
from statsmodels.stats.proportion import proportion_confint

from hilt.ops.snapshot import pool_agreement


def test_unanimous_items_do_not_give_a_certain_agreement() -> None:
    entry = pool_agreement([["a"] * 3] * 20)
    assert entry["value"] == 1.0 and entry["ci_high"] == 1.0
    assert (entry["ci_low"], entry["ci_high"]) == pytest.approx(
        proportion_confint(20, 20, method="wilson"), abs=1e-12)
    assert entry["ci_low"] < 0.9 and entry["ci_method"] == "item wilson"


def test_the_interval_counts_items_not_the_pairs_inside_them() -> None:
    # 19 items of five agreeing answers: 190 pairs, but 19 independent items.
    entry = pool_agreement([["a"] * 5] * 19)
    assert entry["pairs"] == 190 and entry["items"] == 19 and entry["tasks"] == 19
    assert entry["ci_low"] == pytest.approx(proportion_confint(19, 19, method="wilson")[0])
    pairs_low = proportion_confint(190, 190, method="wilson")[0]
    assert entry["ci_low"] < pairs_low - 0.1
    assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]


def test_the_questions_of_one_task_count_as_one_unit() -> None:
    groups = [["a", "a", "b"], ["a", "a", "a"], ["b", "b"], ["a", "b"]]
    by_item = pool_agreement(groups)
    by_task = pool_agreement(groups, ["t1", "t1", "t2", "t2"])
    assert by_item["value"] == by_task["value"] == pytest.approx(5 / 8)
    assert by_item["tasks"] == 4 and by_task["tasks"] == 2 and by_task["items"] == 4
    # Tasks of 6 and 2 pairs: Kish's effective number of tasks is 64 / 40.
    assert by_task["n_effective"] == pytest.approx(1.6)
    assert by_task["ci_high"] - by_task["ci_low"] > by_item["ci_high"] - by_item["ci_low"]
    with pytest.raises(ValueError, match="one unit per group"):
        pool_agreement(groups, ["t1"])


def test_the_interval_never_narrows_when_an_item_disagrees() -> None:
    perfect = pool_agreement([["a"] * 3] * 30)
    one_off = pool_agreement([["a"] * 3] * 29 + [["a", "a", "b"]])
    assert one_off["ci_low"] < perfect["ci_low"]
    assert one_off["ci_low"] <= one_off["value"] <= one_off["ci_high"]
