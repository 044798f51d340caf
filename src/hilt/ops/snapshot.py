"""The periodic quality snapshot: agreement on recently resolved tasks and gold accuracy
per reviewer, each with a 95 % interval.

Agreement is pairwise percent agreement (Fleiss 1971's observed agreement P̄): for each
resolved (task, question) with n ≥ 2 answers, the share of ordered reviewer pairs that
gave the same answer, pooled over all pairs:

    P = Σ_i Σ_v c_iv (c_iv − 1) / Σ_i n_i (n_i − 1)

The interval is Wilson's on the pooled pair count. Pairs within one item are not
independent, so the interval is narrower than a cluster bootstrap would give; it is a
monitor, not a report (``hilt quality agreement`` gives the bootstrap intervals).
Gold accuracy comes from :func:`hilt.quality.reviewers.reviewer_report`.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.canonical import canonical_json
from hilt.store.tables.review import ReviewRow, ReviewTaskRow


def pooled_pair_agreement(answer_groups: list[list[Any]]) -> tuple[int, int]:
    """(agreeing ordered pairs, all ordered pairs) over groups of answers to one item."""
    agree = total = 0
    for values in answer_groups:
        n = len(values)
        if n < 2:
            continue
        counts = Counter(canonical_json(v) for v in values)
        agree += sum(c * (c - 1) for c in counts.values())
        total += n * (n - 1)
    return agree, total


def quality_snapshot(session: Session, now: datetime, *, window_hours: float = 24.0
                     ) -> dict[str, Any]:
    from hilt.quality.calibration import wilson_interval
    from hilt.quality.reviewers import ReviewRecord, reviewer_report

    since = now - timedelta(hours=window_hours)
    t, r = ReviewTaskRow, ReviewRow
    rows = session.execute(
        sa.select(r.task_id, r.answers, t.pool).join(t, t.id == r.task_id)
        .where(t.status == "resolved", t.resolved_at >= since, t.is_gold.is_(False))).all()
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for task_id, answers, pool in rows:
        for question, value in (answers or {}).items():
            groups.setdefault((pool, task_id, question), []).append(value)
    by_pool: dict[str, list[list[Any]]] = {}
    for (pool, _task, _q), values in groups.items():
        by_pool.setdefault(pool, []).append(values)
    agreement = {}
    for pool, pool_groups in sorted(by_pool.items()):
        agree, total = pooled_pair_agreement(pool_groups)
        low, high = wilson_interval(agree, total)
        agreement[pool] = {"value": agree / total if total else None, "pairs": total,
                           "ci_low": float(low), "ci_high": float(high)}
    gold_rows = session.execute(
        sa.select(r.reviewer_id, r.task_id, r.answers, t.gold_answers, r.submitted_at)
        .join(t, t.id == r.task_id).where(t.is_gold.is_(True))).all()
    records = []
    for reviewer, task_id, answers, gold, at in gold_rows:
        for question, truth in (gold or {}).items():
            if question in (answers or {}):
                records.append(ReviewRecord(reviewer, f"{task_id}:{question}",
                                            canonical_json(answers[question]), True,
                                            canonical_json(truth), at))
    reviewers = {row.reviewer: {"gold_accuracy": row.gold_accuracy, "n_gold": row.n_gold,
                                "ci_low": row.ci_low, "ci_high": row.ci_high,
                                "status": str(row.status)}
                 for row in reviewer_report(records)} if records else {}
    return {"at": now.isoformat(), "window_hours": window_hours, "agreement": agreement,
            "reviewers": reviewers}
