"""Numbers behind /metrics: claim latency to a task's first claim, and the quality
snapshot's agreement with its interval."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from hilt.ops.metrics import render
from hilt.ops.snapshot import pool_agreement, pooled_pair_agreement
from hilt.quality.calibration import wilson_interval
from hilt.review.queue import QueueConfig, claim_next
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.review import AssignmentRow, ReviewTaskRow

from .helpers import reviewers, workload


def _latency(engine: Engine) -> tuple[float, float]:
    lines = render(engine).decode().splitlines()
    values = {line.split()[0]: float(line.split()[1]) for line in lines
              if line.startswith("hilt_claim_latency_seconds_")}
    return values["hilt_claim_latency_seconds_count"], values["hilt_claim_latency_seconds_sum"]


def test_claim_latency_counts_each_task_at_its_first_claim(engine: Engine) -> None:
    reviewers(engine, ["ann", "bob", "cy"])
    first_task, second_task = workload(engine, 2, overlap=2)
    config = QueueConfig(gold_rate=0)
    with transaction(engine) as s:
        claims = {who: claim_next(s, who, config=config) for who in ("ann", "bob", "cy")}
    now = utcnow()
    with transaction(engine) as s:
        by_task: dict[str, list[AssignmentRow]] = {}
        for claim in claims.values():
            assert claim is not None
            row = s.get(AssignmentRow, claim.assignment_id)
            assert row is not None
            by_task.setdefault(row.task_id, []).append(row)
        assert sorted(len(v) for v in by_task.values()) == [1, 2]
        two = next(t for t, v in by_task.items() if len(v) == 2)
        one = next(t for t, v in by_task.items() if len(v) == 1)
        # Created 3 h ago, first claimed 2 h ago, claimed again 10 minutes ago: its first
        # claim is outside the hour, so the later claim must not stand in for it.
        task = s.get(ReviewTaskRow, two)
        assert task is not None
        task.created_at = now - timedelta(hours=3)
        early, late = by_task[two]
        early.claimed_at, late.claimed_at = now - timedelta(hours=2), now - timedelta(minutes=10)
        # Created 30 min ago, first claimed 20 min ago: counted, 600 s.
        other = s.get(ReviewTaskRow, one)
        assert other is not None
        other.created_at = now - timedelta(minutes=30)
        by_task[one][0].claimed_at = now - timedelta(minutes=20)
    assert {first_task, second_task} == {one, two}
    count, total = _latency(engine)
    assert count == 1
    assert total == pytest.approx(600, abs=1)


def test_pairs_are_counted_once_each() -> None:
    # Three answers a, a, b: three reviewer pairs, one of which agrees.
    assert pooled_pair_agreement([["a", "a", "b"]]) == (1, 3)
    assert pooled_pair_agreement([["a", "a"], ["a", "b"], ["x"]]) == (1, 2)
    assert pooled_pair_agreement([[{"k": 1}, {"k": 1}, {"k": 1}, {"k": 2}]]) == (3, 6)


def test_agreement_interval_counts_items_not_pairs() -> None:
    # Items where all five reviewers agree and items where all five differ: the pairs
    # within an item are not independent, and the interval must show it.
    groups = [["a"] * 5] * 20 + [["a", "b", "c", "d", "e"]] * 20
    entry = pool_agreement(groups)
    assert entry["ci_method"] == "item wilson"
    assert entry["items"] == 40 and entry["pairs"] == 400
    assert entry["value"] == pytest.approx(0.5)
    assert entry["ci_low"] < 0.5 < entry["ci_high"]
    low, high = wilson_interval(200, 400)
    assert entry["ci_high"] - entry["ci_low"] > 1.5 * float(high - low)
    assert pool_agreement(groups) == entry  # seeded: the same data, the same interval
    empty = pool_agreement([["a"]])
    assert empty["value"] is None and empty["pairs"] == 0
